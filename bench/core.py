"""What bench modules share: the stack, clients, sample media, timers, the report."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psutil

from devstack import ServiceStack, make_long_audio_video, make_video
from mp3mesh.cli.client import MeshClient

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
MIB = 1024 * 1024


@dataclass
class Section:
    """One module's part of results.md: a table, and notes under it."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Tables under this one (what its figures are made of), each with its own notes.
    parts: list[Section] = field(default_factory=list)

    def markdown(self, level: int = 2) -> str:
        lines = [f"{'#' * level} {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + " --- |" * len(self.columns))
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *self.notes]
        text = "\n".join(lines) + "\n"
        return text + "".join("\n" + part.markdown(level + 1) for part in self.parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


@dataclass
class Bench:
    """Handed to each module's ``run``: the stack and what to make with it."""

    stack: ServiceStack
    work: Path
    quick: bool = False

    def user(self) -> MeshClient:
        return self.stack.new_user()

    def db(self):  # type: ignore[no-untyped-def]
        return self.stack.db()

    def process(self, service: str) -> psutil.Process:
        return self.stack.process(service)

    def rss(self, service: str) -> int:
        """Resident memory of the service's process and its children."""
        main = self.stack.process(service)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])

    def clip(self, seconds: float) -> Path:
        """A test-pattern video with a tone, made once per length."""
        path = self.work / f"clip-{seconds:g}s.mp4"
        if not path.exists():
            make_video(path, seconds)
        return path

    def long_audio_video(self, seconds: int) -> Path:
        """The fault suite's long file (devstack.make_long_audio_video), made once."""
        path = self.work / f"long-{seconds}s.avi"
        return path if path.exists() else make_long_audio_video(path, seconds)

    def noise(self, size: int) -> Path:
        """``size`` random bytes (not a video: its job fails, the transfer is what counts)."""
        path = self.work / f"noise-{size}.bin"
        if not path.exists():
            with path.open("wb") as f:
                left = size
                while left:
                    block = os.urandom(min(left, 4 * MIB))
                    f.write(block)
                    left -= len(block)
        return path


def _cpu(times: Any, children: bool = False) -> float:
    if children:
        return float(times.children_user + times.children_system)
    return float(times.user + times.system)


def _rabbitmq() -> psutil.Process | None:
    """The machine's RabbitMQ server (Erlang's beam), shared with whatever else uses it."""
    for p in psutil.process_iter(["name", "cmdline"]):
        if (
            p.info["name"]
            and p.info["name"].startswith("beam")
            and "rabbit" in " ".join(p.info["cmdline"] or [])
        ):
            return p
    return None


def cpu_snapshot(b: Bench) -> dict[str, float]:
    """CPU seconds used so far: by each process of the stack (the converter's ffmpegs,
    its children, apart), the bench process (its bare ffmpegs apart), the machine's
    RabbitMQ and the whole machine."""
    seen: dict[str, float] = {}
    for name in b.stack.processes:
        try:
            times = b.process(name).cpu_times()
        except psutil.NoSuchProcess:
            continue
        seen[name] = _cpu(times)
        if name == "converter":
            seen["ffmpeg"] = _cpu(times, children=True)
    me = psutil.Process().cpu_times()
    seen["bench client"], seen["bare ffmpeg"] = _cpu(me), _cpu(me, children=True)
    if (rabbit := _rabbitmq()) is not None:
        seen["RabbitMQ"] = _cpu(rabbit.cpu_times())
    m = psutil.cpu_times()
    seen["machine"] = m.user + m.nice + m.system + m.irq + m.softirq + m.steal
    return seen


@contextmanager
def cpu_used(b: Bench) -> Iterator[dict[str, float]]:
    """CPU seconds the with-block took, by ``cpu_snapshot``'s names, filled in at its
    end; "elsewhere" is the machine's busy time that none of them accounts for (other
    work on the machine, the kernel's share of the network)."""
    used: dict[str, float] = {}
    before = cpu_snapshot(b)
    yield used
    after = cpu_snapshot(b)
    used.update({name: after[name] - before.get(name, after[name]) for name in after})
    used["elsewhere"] = max(
        used["machine"] - sum(v for k, v in used.items() if k != "machine"), 0.0
    )


def bare_ffmpeg(video: Path, out: Path) -> float:
    """Seconds for ffmpeg alone on the converter's command line (192 kb/s, 44.1 kHz)."""
    started = time.perf_counter()
    subprocess.run(
        [FFMPEG, "-y", "-nostdin", "-loglevel", "error", "-i", str(video), "-vn",
         "-ab", "192k", "-ar", "44100", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    ended: list[float] = []
    yield lambda: (ended[0] if ended else time.perf_counter()) - started
    ended.append(time.perf_counter())


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def mb_per_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds
