"""Audio extraction with ffmpeg, and what each way ffmpeg can end means for the job.

MoviePy's ffmpeg tools probe the input; the extraction itself runs the same ffmpeg command
line as ``moviepy.video.io.ffmpeg_tools.ffmpeg_extract_audio`` but under our own
``subprocess.Popen``, because MoviePy's call can be neither stopped nor timed out nor
report progress. The MP3's duration comes from ffmpeg's own final ``-progress`` report
(no second probe); the progress file is read while ffmpeg runs, for the job's percentage.

How an ffmpeg run is classified:

- exit 0: done.
- stopped by us because the converter is shutting down: :class:`ShuttingDown` (the job
  goes back to the queue without counting an attempt).
- stopped by us because its caller cancelled it (the job was taken over by another
  converter): :class:`Cancelled`.
- stopped by us at its deadline (proportional to the media's duration): :class:`Interrupted`
  (transient: retried).
- ended by a signal from anyone else (the OOM killer, an operator, a node drain): killed
  outright (negative return code) or ffmpeg's own "received signal" exit (255):
  :class:`Interrupted`.
- out of disk space or memory: :class:`Interrupted`; the machine is at fault, not the video.
- any other non-zero exit (invalid data, no audio stream, an unsupported codec):
  :class:`Unconvertible` with ffmpeg's last error line (permanent: the job fails).

ffmpeg runs in its own session, so a signal to the converter's process group (Ctrl-C in a
terminal, a container runtime signalling the group) reaches only the converter, which then
stops ffmpeg itself: the outcome no longer depends on who got the signal first. Should the
converter die without stopping it (SIGKILL), the kernel kills ffmpeg too (``PR_SET_PDEATHSIG``,
set between fork and exec); ffmpeg's ``-timelimit`` remains as a last bound.

Several extractions may run at once, one per converter thread: nothing here is shared
between them but the stop request.
"""

from __future__ import annotations

import ctypes
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moviepy.config import FFMPEG_BINARY
from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

from mp3mesh.converter.media_probe import describe

POLL_SECONDS = 0.2
# How often ffmpeg rewrites its -progress report.
PROGRESS_PERIOD_SECONDS = 0.25
# After asking ffmpeg to stop (SIGTERM), how long it gets before SIGKILL.
KILL_AFTER_SECONDS = 2.0
# ffmpeg exits with 255 when it stopped because it received SIGINT/SIGTERM/SIGQUIT.
FFMPEG_SIGNALLED_EXIT = 255
_RESOURCE_ERRORS = ("No space left on device", "Cannot allocate memory")
# What ffmpeg may open, given before every input (the probe's too): local files only (no
# network, no pipes, no data: URLs), and only the demuxers of video containers, so a
# playlist (HLS, DASH), a concat script or an image sequence is refused, not followed.
VIDEO_DEMUXERS = "mov,matroska,avi,flv,mpegts,mpeg,asf,ogg,mxf,nut,rm,dv"
INPUT_GUARDS = ("-protocol_whitelist", "file", "-format_whitelist", VIDEO_DEMUXERS)
MP3_DEMUXER = "mp3"
PROBE_TIMEOUT_SECONDS = 60.0
# The default cap on a job's media: longer videos are refused before ffmpeg runs.
MAX_MEDIA_SECONDS = 6 * 3600.0
# An honest file's audio runs this much past what it declares, at most (encoder
# padding, rounding); past it the output is cut and the job refused.
DURATION_SLACK = 1.02
DURATION_SLACK_SECONDS = 2.0
MP3_SLACK_BYTES = 256 * 1024


class Unconvertible(Exception):
    """The input can never become an MP3; the message tells the user why."""


class Interrupted(Exception):
    """ffmpeg did not finish for a reason that is not the video's fault; try again later."""


class ShuttingDown(Exception):
    """The converter is stopping; the job should wait in the queue for the next start."""


class Cancelled(Exception):
    """The caller withdrew this one extraction (its ``cancel`` event was set)."""


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    has_video: bool
    has_audio: bool
    # What the probe read, for the job's full view (mp3mesh/converter/media_probe.py).
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deadline:
    """How long ffmpeg may take: ``base + per_media_second x duration`` seconds."""

    base_seconds: float = 60.0
    per_media_second: float = 0.5

    def for_duration(self, duration: float) -> float:
        return self.base_seconds + self.per_media_second * max(duration, 0.0)


def probe(path: Path, demuxers: str = VIDEO_DEMUXERS) -> MediaInfo:
    """What ffmpeg finds in ``path`` (MoviePy's parser of ``ffmpeg -i``), opened as a
    local file by one of ``demuxers`` (INPUT_GUARDS; "mp3" for the converter's own
    output)."""
    guards = ["-protocol_whitelist", "file", "-format_whitelist", demuxers]
    command = [FFMPEG_BINARY, "-hide_banner", "-nostdin", *guards, "-i", str(path)]
    try:
        output = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        ).stderr.decode("utf8", errors="ignore")
        infos = FFmpegInfosParser(output, str(path)).parse()
    except subprocess.TimeoutExpired as exc:
        raise Unconvertible("ffmpeg could not read the uploaded file in time") from exc
    except Exception as exc:  # the parser's own errors: what it cannot parse is no video
        raise Unconvertible(
            "the uploaded file is not a video ffmpeg can read (invalid or unsupported data,"
            " or a playlist or script rather than a video)"
        ) from exc
    return MediaInfo(
        duration=float(infos.get("duration") or 0.0),
        has_video=bool(infos.get("video_found")),
        has_audio=bool(infos.get("audio_found")),
        details=describe(output),
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class OutputBound:
    """How much MP3 a job may write: its declared duration (at most the cap) with some
    slack, as time (ffmpeg's ``-t``) and as bytes at the bitrate (``-fs``). A file whose
    audio runs past what it declares is cut there and refused, so no file, however it
    lies, writes more than ``max_media_seconds`` worth of MP3 to the work volume."""

    seconds: float
    bytes: int

    @classmethod
    def for_media(cls, duration: float, max_media_seconds: float, bitrate_kbps: int) -> OutputBound:
        declared = duration if duration > 0 else max_media_seconds  # unknown: the cap
        seconds = min(declared * DURATION_SLACK + DURATION_SLACK_SECONDS, max_media_seconds)
        return cls(seconds, math.ceil(seconds * bitrate_kbps * 1000 / 8) + MP3_SLACK_BYTES)

    def reached(self, written_seconds: float | None, size: int) -> bool:
        return size >= self.bytes or (
            written_seconds is not None and written_seconds >= self.seconds - 0.05
        )


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it ends (the
    converter killed, or crashed). Resolved before the fork; the child runs only a syscall."""
    prctl, getppid, exit_now = _LIBC.prctl, os.getppid, os._exit

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if getppid() != parent:  # the converter died before prctl took effect
            exit_now(1)

    return preexec


class Transcoder:
    """Runs ffmpeg for any number of threads at once and lets another thread (the signal
    handler) ask all of them to stop."""

    def __init__(
        self, deadline: Deadline | None = None, max_media_seconds: float = MAX_MEDIA_SECONDS
    ) -> None:
        self.deadline = deadline or Deadline()
        self.max_media_seconds = max_media_seconds
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Signal-safe: the running ffmpeg is stopped within ``POLL_SECONDS``."""
        self._stopping.set()

    def check_stopping(self) -> None:
        if self._stopping.is_set():
            raise ShuttingDown("the converter is shutting down")

    def extract_mp3(
        self,
        video: Path,
        mp3: Path,
        bitrate_kbps: int,
        sample_rate: int,
        on_progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        on_start: Callable[[MediaInfo, list[str] | None], None] | None = None,
    ) -> MediaInfo:
        """Write the video's audio track to ``mp3``; returns what the MP3 turned out to be.
        ``on_progress`` gets the fraction of the media done, from ffmpeg's own reports;
        setting ``cancel`` stops this extraction alone (:class:`Cancelled`); ``on_start``
        gets the probe once read (command None, so that a refused input shows it too),
        then the probe and the exact command line just before ffmpeg runs."""
        source = probe(video)
        if on_start is not None:
            on_start(source, None)
        if not source.has_video:
            raise Unconvertible("the uploaded file has no video stream; upload a video file")
        if not source.has_audio:
            raise Unconvertible(
                "the video has no audio track, so there is nothing to convert to MP3"
            )
        if source.duration > self.max_media_seconds:
            raise Unconvertible(
                f"the video is {_hours(source.duration)} long; at most"
                f" {_hours(self.max_media_seconds)} of media is converted"
            )
        bound = OutputBound.for_media(source.duration, self.max_media_seconds, bitrate_kbps)
        limit = self.deadline.for_duration(bound.seconds)
        report = mp3.with_name(mp3.name + ".progress")
        errors = mp3.with_name(mp3.name + ".stderr")
        command = _extract_command(video, mp3, report, bitrate_kbps, sample_rate, limit, bound)
        if on_start is not None:
            on_start(source, command)
        with errors.open("wb") as stderr:
            self.check_stopping()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
            returncode, stopped_by_us = self._wait(
                process, limit, source.duration, report, on_progress, cancel or threading.Event()
            )
        if returncode != 0:
            _raise_for_failure(returncode, stopped_by_us, limit, _last_line(errors))
        written = _media_seconds_done(report)
        if bound.reached(written, mp3.stat().st_size if mp3.exists() else 0):
            mp3.unlink(missing_ok=True)
            raise Unconvertible(
                f"the video's audio runs longer than the {_hours(source.duration)} it declares"
                f" (cut at {_hours(bound.seconds)}); re-encode it and upload it again"
            )
        if written is None:  # no final report (should not happen): ask ffmpeg
            return probe(mp3, MP3_DEMUXER)
        return MediaInfo(duration=round(written, 2), has_video=False, has_audio=True)

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        limit: float,
        duration: float,
        report: Path,
        on_progress: Callable[[float], None] | None,
        cancel: threading.Event,
    ) -> tuple[int, str]:
        """Wait for ffmpeg, stopping it at the deadline, on shutdown or when cancelled;
        returns its exit code and why we stopped it ("" if we did not). However this ends
        (an exception from ``on_progress`` included), ffmpeg does not outlive it."""
        started = time.monotonic()
        stopped_by_us, asked_at = "", 0.0
        exited = _ExitWatch(process)
        try:
            while True:
                now = time.monotonic()
                if not stopped_by_us and (why := self._why_stop(cancel, now - started, limit)):
                    stopped_by_us = why
                    process.send_signal(signal.SIGTERM)
                    asked_at = now
                elif stopped_by_us and now - asked_at > KILL_AFTER_SECONDS:
                    process.kill()
                elif on_progress is not None and duration > 0:
                    done = _media_seconds_done(report)
                    if done is not None:
                        on_progress(min(done / duration, 1.0))
                if exited.within(POLL_SECONDS):
                    return process.wait(), stopped_by_us
        finally:
            exited.close()
            if process.poll() is None:
                process.kill()
                process.wait()

    def _why_stop(self, cancel: threading.Event, elapsed: float, limit: float) -> str:
        """Why ffmpeg must be stopped now, or "" to let it run."""
        if self.stopping:
            return "shutdown"
        if cancel.is_set():
            return "cancelled"
        return "timeout" if elapsed >= limit else ""


class _ExitWatch:
    """Waits for a child's exit and wakes the moment it happens (its pidfd), where
    ``Popen.wait(timeout)`` would poll in sleeps of up to 50 ms."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._fd = os.pidfd_open(process.pid)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def within(self, seconds: float) -> bool:
        return bool(self._poll.poll(seconds * 1000)) or self.process.poll() is not None

    def close(self) -> None:
        os.close(self._fd)


def _extract_command(
    video: Path,
    mp3: Path,
    report: Path,
    bitrate_kbps: int,
    sample_rate: int,
    limit: float,
    bound: OutputBound,
) -> list[str]:
    """ffmpeg_extract_audio's command line, with a time limit, a progress report, the
    input guards and the output bound."""
    return [
        FFMPEG_BINARY,
        "-y",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-timelimit",
        str(math.ceil(limit)),
        "-progress",
        str(report),
        "-stats_period",
        str(PROGRESS_PERIOD_SECONDS),
        *INPUT_GUARDS,
        "-i",
        str(video),
        "-vn",
        "-ab",
        f"{bitrate_kbps}k",
        "-ar",
        str(sample_rate),
        "-t",
        f"{bound.seconds:.3f}",
        "-fs",
        str(bound.bytes),
        str(mp3),
    ]


def _raise_for_failure(returncode: int, stopped_by_us: str, limit: float, last: str) -> None:
    if stopped_by_us == "shutdown":
        raise ShuttingDown("ffmpeg was stopped because the converter is shutting down")
    if stopped_by_us == "cancelled":
        raise Cancelled("ffmpeg was stopped: its extraction was cancelled")
    if stopped_by_us == "timeout":
        raise Interrupted(f"ffmpeg did not finish within its {limit:.0f} s deadline")
    if returncode < 0:
        raise Interrupted(f"ffmpeg was killed by {signal.Signals(-returncode).name}")
    if returncode == FFMPEG_SIGNALLED_EXIT:
        raise Interrupted("ffmpeg was stopped by a signal")
    if any(needle in last for needle in _RESOURCE_ERRORS):
        raise Interrupted(f"ffmpeg ran out of resources: {last}")
    raise Unconvertible(f"ffmpeg could not extract the audio: {last or 'unknown error'}")


def _last_line(path: Path) -> str:
    """The last non-empty line ffmpeg wrote to stderr (at most the file's last 4 KiB)."""
    with path.open("rb") as f:
        f.seek(max(path.stat().st_size - 4096, 0))
        lines = f.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _media_seconds_done(report: Path) -> float | None:
    """The last ``out_time_us`` in ffmpeg's ``-progress`` file, in seconds."""
    try:
        with report.open("rb") as f:
            f.seek(max(report.stat().st_size - 1024, 0))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.strip().isdigit():
            return int(value) / 1_000_000
    return None
