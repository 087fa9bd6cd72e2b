"""A load run: 32 clients, each uploading 5 MB videos one after another for 60 s."""

from __future__ import annotations

import threading
import time

from bench.core import MIB, Bench, Section, median, percentile
from devstack import make_video

ORDER = 90
CLIENTS = 32


def run(b: Bench) -> Section:
    seconds = 15 if b.quick else 60
    video = b.work / "load-5mb.mp4"
    if not video.exists():
        make_video(video, 10, bitrate="4M", noise=True)
    clients = [b.user() for _ in range(CLIENTS)]
    before = {s: b.rss(s) for s in ("gateway", "converter")}
    times: list[float] = []
    errors: list[str] = []
    job_ids: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client_loop(n: int) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                job = clients[n].upload(video)
            except Exception as exc:
                with lock:
                    errors.append(repr(exc)[:200])
                continue
            with lock:
                times.append(time.perf_counter() - started)
                job_ids.append(job.id)

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    after = {s: b.rss(s) for s in ("gateway", "converter")}
    mine = set(job_ids)
    done = sum(str(j["_id"]) in mine for j in b.db()["jobs"].find({"status": "SUCCEEDED"}))
    size = video.stat().st_size
    section = Section(
        f"Load: {CLIENTS} clients uploading {size / 1e6:.1f} MB videos for {seconds} s",
        ["figure", "value"],
    )
    section.rows += [
        ["uploads completed", len(times)],
        ["uploads per second", len(times) / took],
        ["upload throughput, MB/s", len(times) * size / 1e6 / took],
        ["upload latency median, s", median(times) if times else ""],
        ["upload latency p99, s", percentile(times, 99) if times else ""],
        ["errors (target: 0)", len(errors)],
        ["jobs SUCCEEDED by the end of the run", done],
        [
            "gateway RSS before / after, MiB",
            f"{before['gateway'] / MIB:.0f} / {after['gateway'] / MIB:.0f}",
        ],
        [
            "converter RSS before / after (with its ffmpegs), MiB",
            f"{before['converter'] / MIB:.0f} / {after['converter'] / MIB:.0f}",
        ],
    ]
    if errors:
        section.notes.append(f"First errors: {errors[:3]}")
    section.notes.append(
        "The converter keeps converting the backlog after the run; the stack is torn down"
        " after this section."
    )
    return section
