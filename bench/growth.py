"""How cost grows with size: gRPC upload time and the gateway's memory at 10, 100 and
1000 MB (random bytes: the transfer is what is measured, the jobs fail as not videos)."""

from __future__ import annotations

from bench.core import MIB, Bench, Section, mb_per_s, timer
from devstack import PeakRss

ORDER = 50


def run(b: Bench) -> Section:
    sizes = (10, 100) if b.quick else (10, 100, 1000)
    client = b.user()
    client.upload(b.noise(10 * 1000 * 1000))  # warm: first upload, pools, buffers
    section = Section(
        "Cost by size: gRPC upload",
        ["size MB", "upload s", "MB/s", "gateway RSS before MiB", "peak growth MiB", "target"],
    )
    for size_mb in sizes:
        path = b.noise(size_mb * 1000 * 1000)
        with PeakRss(b.process("gateway")) as rss, timer() as took:
            client.upload(path)
        section.rows.append(
            [size_mb, took(), mb_per_s(path.stat().st_size, took()), rss.before / MIB,
             rss.growth / MIB, "< 32 MiB" if size_mb == 1000 else ""]
        )  # fmt: skip
        path.unlink()
    section.notes.append(
        "RSS sampled every 20 ms during the upload (devstack/memory.py PeakRss); growth is the"
        " peak over the RSS just before it."
    )
    return section
