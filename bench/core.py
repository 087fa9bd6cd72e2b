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

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + " --- |" * len(self.columns))
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines) + "\n"


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
