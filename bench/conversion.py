"""Conversion: one job through the mesh against bare ffmpeg on the same file; many jobs
at once against the same files converted one after another by bare ffmpeg; the time from
the end of an upload to its job's SUCCEEDED."""

from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path

from bench.core import Bench, Section, bare_ffmpeg, median, percentile, timer
from mp3mesh.cli.client import MeshClient
from mp3mesh.files.v1 import files_pb2

ORDER = 20
SUCCEEDED = files_pb2.JOB_STATUS_SUCCEEDED


def _succeeded_after_upload(client: MeshClient, video: Path) -> tuple[float, float]:
    """Seconds from the end of the upload until WatchJob says SUCCEEDED, and from the
    first PROCESSING update until then (the converter's share)."""
    job = client.upload(video)
    uploaded = time.perf_counter()
    processing = None
    for update in client.watch(job.id, timeout=1800):
        if processing is None and update.status == files_pb2.JOB_STATUS_PROCESSING:
            processing = time.perf_counter()
        if update.status == SUCCEEDED:
            done = time.perf_counter()
            return done - uploaded, done - (processing or uploaded)
    raise AssertionError(f"job {job.id} ended {update.status}: {update.error}")


def _concurrent(b: Bench, client: MeshClient, videos: list[Path]) -> float:
    """Submit every video at once (an upload each, in parallel); seconds until all of
    them SUCCEEDED."""
    return _submit_all(client, videos)[0]


def _submit_all(client: MeshClient, videos: list[Path]) -> tuple[float, list[str]]:
    """``_concurrent``, with the jobs' ids."""
    with timer() as took, concurrent.futures.ThreadPoolExecutor(len(videos)) as pool:
        jobs = list(pool.map(client.upload, videos))
        finals = list(pool.map(lambda job: client.wait(job.id, timeout=1800), jobs))
    assert all(j.status == SUCCEEDED for j in finals), [j.error for j in finals]
    return took(), [j.id for j in jobs]


def _bare_parallel(b: Bench, videos: list[Path], at_once: int) -> float:
    """Seconds for bare ffmpeg on every video, ``at_once`` at a time."""
    with timer() as took, concurrent.futures.ThreadPoolExecutor(at_once) as pool:
        list(pool.map(lambda v: bare_ffmpeg(v, v.with_suffix(".mp3")), videos))
    return took()


def run(b: Bench) -> Section:
    client = b.user()
    short = b.clip(10)
    long = b.long_audio_video(300 if b.quick else 2400)
    section = Section(
        "Conversion", ["what", "mesh", "baseline", "ratio (mesh / baseline)", "target"]
    )
    client.wait(client.upload(short).id)  # warm: first job, first connections

    # One file, the mesh against bare ffmpeg.
    bare_short: list[float] = []
    minutes = f"{(300 if b.quick else 2400) // 60} min audio"
    for name, video, runs in (("10 s clip", short, 3), (minutes, long, 1 if b.quick else 2)):
        mesh, converter, bare = [], [], []
        for _ in range(runs):
            total, converting = _succeeded_after_upload(client, video)
            mesh.append(total)
            converter.append(converting)
            bare.append(bare_ffmpeg(video, b.work / "bare.mp3"))
        if video is short:
            bare_short = bare
        target = "<= 1.1x" if video is long else ""
        section.rows.append(
            [f"{name}: upload end -> SUCCEEDED, s", median(mesh), median(bare),
             median(mesh) / median(bare), target]
        )  # fmt: skip
        section.rows.append(
            [f"{name}: PROCESSING -> SUCCEEDED, s", median(converter), median(bare),
             median(converter) / median(bare), ""]
        )  # fmt: skip

    # Many jobs at once against serial bare ffmpeg on the same files.
    for count in (8,) if b.quick else (8, 32):
        videos = []
        for n in range(count):  # distinct files (same content), as users would send
            copy = b.work / f"many-{n}.mp4"
            copy.write_bytes(short.read_bytes())
            videos.append(copy)
        serial = sum(bare_ffmpeg(v, b.work / "bare.mp3") for v in videos)
        together = _concurrent(b, client, videos)
        section.rows.append(
            [f"{count} jobs submitted at once, all SUCCEEDED, s", together, serial,
             together / serial, "<= 0.6x" if count == 8 else ""]
        )  # fmt: skip
        if count == 8:  # what bounds it on this machine
            cores = len(os.sched_getaffinity(0))
            section.rows.append(
                [f"bare ffmpeg on the {count} files, {cores} at a time, s",
                 _bare_parallel(b, videos, cores), serial,
                 _bare_parallel(b, videos, cores) / serial, "(the bound)"]
            )  # fmt: skip
            with timer() as took, concurrent.futures.ThreadPoolExecutor(count) as pool:
                list(pool.map(client.upload, videos))
            section.rows.append(
                [f"{count} uploads alone, in parallel, s", took(), serial, took() / serial, ""]
            )

    # Latency: upload end -> SUCCEEDED of a 10 s clip, one job at a time.
    latencies = [_succeeded_after_upload(client, short)[0] for _ in range(5 if b.quick else 10)]
    section.rows.append(
        ["10 s clip, upload end -> SUCCEEDED: median, s", median(latencies),
         median(bare_short), median(latencies) / median(bare_short), "<= 0.3 s"]
    )  # fmt: skip
    section.rows.append(
        ["10 s clip, upload end -> SUCCEEDED: p95, s", percentile(latencies, 95), "", "", ""]
    )
    section.notes += [
        "Baseline: bare ffmpeg (the converter's command line: `-vn -ab 192k -ar 44100`) on",
        "the same file from the bench process, measured right after the mesh's runs. Mesh",
        "times are seen by a WatchJob client: from the end of the Upload call (or the first",
        "PROCESSING update) to the SUCCEEDED update. The concurrent runs upload all files in",
        "parallel and time from the first upload to the last SUCCEEDED; the serial baseline",
        "runs bare ffmpeg on the same files one after another.",
        f"The 10 s clip: {short.stat().st_size / 1e6:.1f} MB; the {minutes} file: 16x16 at",
        f"1 frame/s with 8 kHz stereo ADPCM audio, {long.stat().st_size / 1e6:.0f} MB.",
        "The bound row runs bare ffmpeg as many at a time as there are cores: the best any",
        "converter could do here while nothing else runs.",
    ]
    return section
