"""Batches against their bound: many jobs submitted at once through the mesh, against
bare ffmpeg on the same files run as many at a time as there are cores (the best any
converter could do on this machine), measured right after in the same run."""

from __future__ import annotations

import os
import shutil

from bench.conversion import _bare_parallel, _concurrent
from bench.core import Bench, Section

ORDER = 25


def run(b: Bench) -> Section:
    cores = len(os.sched_getaffinity(0))
    client = b.user()
    section = Section(
        "Batches against the bound",
        ["jobs submitted at once", "mesh s", f"bare ffmpeg, {cores} at a time, s",
         "ratio (mesh / bound)", "target"],
    )  # fmt: skip
    long_count = 4 if b.quick else 12
    batches = (
        (f"{long_count} x 5-minute files", b.long_audio_video(300), long_count, "<= 1.15x"),
        ("8 x 10 s clips", b.clip(10), 8, "<= 1.5x"),
    )
    client.wait(client.upload(b.clip(1)).id)  # warm: first job, first connections
    for name, source, count, target in batches:
        videos = []
        for n in range(count):  # distinct files (same content), as users would send
            copy = b.work / f"batch-{n}{source.suffix}"
            shutil.copyfile(source, copy)
            videos.append(copy)
        mesh = _concurrent(b, client, videos)
        bound = _bare_parallel(b, videos, cores)
        section.rows.append([name, mesh, bound, mesh / bound, target])
    section.notes += [
        "Mesh: every file uploaded at once by one user (an upload each, in parallel), timed",
        "from the first upload to the last SUCCEEDED. Bound: bare ffmpeg (the converter's",
        "command line) on the same files from the bench process, as many at a time as there",
        "are cores, right after. The 5-minute file is the 40-minute file's kind (16x16 at 1",
        "frame/s, 8 kHz stereo ADPCM), 2.5 MB; the clip is 1.0 MB.",
    ]
    return section
