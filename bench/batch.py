"""Batches against their bound: many jobs submitted at once through the mesh, against
bare ffmpeg on the same files run as many at a time as there are cores (the best any
converter could do on this machine), measured right after in the same run; and what
each batch's time was made of: the jobs' stage times (GetJob's full view) and the CPU
seconds of every process during it."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from typing import Any

from bson import ObjectId, json_util

from bench.conversion import _bare_parallel, _submit_all
from bench.core import Bench, Section, cpu_used
from mp3mesh.cli.client import MeshClient
from mp3mesh.core.jobs import COLLECTION as JOBS

ORDER = 25
STAGES = ("queued", "fetch", "convert", "store", "announce")
# The CPU columns, by cpu_snapshot's names.
CPU = (
    ("ffmpegs", "ffmpeg"),
    ("bare ffmpegs", "bare ffmpeg"),
    ("converter", "converter"),
    ("gateway", "gateway"),
    ("MongoDB stand-in", "mongo"),
    ("RabbitMQ (shared)", "RabbitMQ"),
    ("bench client", "bench client"),
)


def _at(entry: Any) -> float:
    """An attempt entry's time as epoch seconds. The stand-in hands ``$push``ed documents
    back as their extended JSON text, whose times GetJob's full view leaves unset."""
    if isinstance(entry, str):
        entry = json_util.loads(entry)
    at: dt.datetime = entry["at"]
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp()


def _timeline(
    b: Bench, client: MeshClient, job_ids: list[str], started: float, ended: float, cores: int
) -> dict[str, Any]:
    """Where a batch's wall time went, from its jobs' stage times (GetJob's full view)
    and their attempts' claim and end times (the records): the head (first upload until
    the first ffmpeg could start: upload, queue hop, claim, fetch), the tail (the last
    ffmpeg's end until the last SUCCEEDED seen: store, succeed, announce, the watcher's
    update), and how busy the ffmpeg slots were in between."""
    jobs = [client.job(job_id, full=True) for job_id in job_ids]
    stages = {s: [getattr(j.details.stage_times, f"{s}_seconds") for j in jobs] for s in STAGES}
    records = {
        str(r["_id"]): r
        for r in b.db()[JOBS].find({"_id": {"$in": [ObjectId(i) for i in job_ids]}})
    }
    claims = [_at(records[i]["attempt_starts"][-1]) for i in job_ids]
    ends = [_at(records[i]["attempt_ends"][-1]) for i in job_ids]
    first_ffmpeg = min(c + f for c, f in zip(claims, stages["fetch"], strict=True))
    last_ffmpeg = max(e - s for e, s in zip(ends, stages["store"], strict=True))
    middle = max(last_ffmpeg - first_ffmpeg, 1e-9)
    return {
        "uploads": max(j.create_time.seconds + j.create_time.nanos / 1e9 for j in jobs) - started,
        "head": first_ffmpeg - started,
        "middle": middle,
        "tail": ended - last_ffmpeg,
        "busy": sum(stages["convert"]) / (cores * middle),
        "means": {s: sum(v) / len(v) for s, v in stages.items()},
    }


def run(b: Bench) -> Section:
    cores = len(os.sched_getaffinity(0))
    client = b.user()
    section = Section(
        "Batches against the bound",
        ["jobs submitted at once", "mesh s", f"bare ffmpeg, {cores} at a time, s",
         "ratio (mesh / bound)", "target"],
    )  # fmt: skip
    timing = Section(
        "What the batch time is made of (the jobs' records)",
        ["batch", "mesh s", "head: first upload -> first ffmpeg, s", "of it: uploads, s",
         "middle: first -> last ffmpeg, s", "ffmpeg slots busy in the middle",
         "tail: last ffmpeg -> last SUCCEEDED, s",
         *(f"per job: {s}, s" for s in STAGES)],
    )  # fmt: skip
    cpu = Section(
        "CPU seconds during each run",
        ["run", "wall s", f"{cores} cores x wall", *(name for name, _ in CPU),
         "rest of the machine", "idle"],
    )  # fmt: skip
    section.parts += [timing, cpu]
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
        started = time.time()
        with cpu_used(b) as mesh_cpu:
            mesh, job_ids = _submit_all(client, videos)
        with cpu_used(b) as bound_cpu:
            bound = _bare_parallel(b, videos, cores)
        section.rows.append([name, mesh, bound, mesh / bound, target])
        t = _timeline(b, client, job_ids, started, started + mesh, cores)
        timing.rows.append(
            [name, mesh, t["head"], t["uploads"], t["middle"], f"{t['busy']:.0%}", t["tail"],
             *(t["means"][s] for s in STAGES)]
        )  # fmt: skip
        for run_name, seconds, used in ((f"{name}: mesh", mesh, mesh_cpu),
                                        (f"{name}: bare ffmpeg", bound, bound_cpu)):  # fmt: skip
            shown = [used.get(key, 0.0) for _, key in CPU]
            cpu.rows.append(
                [run_name, seconds, cores * seconds, *(v or "" for v in shown),
                 max(used["machine"] - sum(shown), 0.0),
                 max(cores * seconds - used["machine"], 0.0)]
            )  # fmt: skip
    section.notes += [
        "Mesh: every file uploaded at once by one user (an upload each, in parallel), timed",
        "from the first upload to the last SUCCEEDED. Bound: bare ffmpeg (the converter's",
        "command line) on the same files from the bench process, as many at a time as there",
        "are cores, right after. The 5-minute file is the 40-minute file's kind (16x16 at 1",
        "frame/s, 8 kHz stereo ADPCM), 2.5 MB; the clip is 1.0 MB.",
    ]
    timing.notes += [
        "From each job's stage times (GetJob's full view, Job.details) and its attempt's claim and",
        "end): the head runs from the first upload's start until the first job's video was",
        "fetched (its ffmpeg could start); the tail from the last ffmpeg's end (the attempt's",
        "end less its store time) until the bench saw the last SUCCEEDED; ffmpeg slots busy",
        f"is the jobs' convert time (probe and ffmpeg) over {cores} slots x the middle. Per",
        "job: the mean of each stage (queued: upload end -> claim, which includes waiting",
        "for a free consumer). Claim and end times come from the job records (the services'",
        "clocks, the bench's own).",
    ]
    cpu.notes += [
        "psutil on each process during the run: ffmpegs are the converter's children (its",
        "probe included), bare ffmpegs the bench process's; RabbitMQ is the machine's server,",
        "which other users of the machine share; rest of the machine is the machine's busy",
        "time that none of the columns accounts for (auth, notification, shim, Envoy, the",
        "kernel's network work, other users); idle is cores x wall less the machine's busy.",
    ]
    return section
