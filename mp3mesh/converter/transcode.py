"""Audio extraction with ffmpeg, and what each way ffmpeg can end means for the job.

MoviePy's ffmpeg tools probe the input; the extraction itself runs, for a job without
options, the same ffmpeg command line as ``moviepy.video.io.ffmpeg_tools.ffmpeg_extract_audio``
but under our own ``subprocess.Popen``, because MoviePy's call can be neither stopped nor
timed out nor report progress. A job's options (mp3mesh/core/options.py, docs/options.md)
shape that one command (:func:`extract_command`); loudness normalisation adds a first,
measuring pass (:func:`measure_command`). The MP3's duration comes from ffmpeg's own final
``-progress`` report (no second probe); the progress file is read while ffmpeg runs, for
the job's percentage.

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
import json
import math
import os
import re
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
from mp3mesh.core.options import (
    CBR_BITRATES_KBPS,
    LOUDNORM_RANGE_LU,
    LOUDNORM_TRUE_PEAK_DB,
    MAX_TAG_LENGTH,
    Effective,
    effective,
)
from mp3mesh.files.v1.files_pb2 import ConversionOptions

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
# A cover is a frame scaled to at most this width, as JPEG; its bytes are budgeted on top.
COVER_WIDTH = 600
COVER_BUDGET_BYTES = 2 * 1024 * 1024
# A trim's end may lie this far past the probed duration (container rounding).
TRIM_SLACK_SECONDS = 0.05
# loudnorm's first-pass figures its second pass takes.
_LOUDNORM_FIGURES = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


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
    # The container's own title tag, if any.
    title: str = ""
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
        title=str((infos.get("metadata") or {}).get("title") or "")[:MAX_TAG_LENGTH],
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
    def for_media(
        cls, duration: float, max_media_seconds: float, bitrate_kbps: int, extra_bytes: int = 0
    ) -> OutputBound:
        declared = duration if duration > 0 else max_media_seconds  # unknown: the cap
        seconds = min(declared * DURATION_SLACK + DURATION_SLACK_SECONDS, max_media_seconds)
        size = math.ceil(seconds * bitrate_kbps * 1000 / 8) + MP3_SLACK_BYTES + extra_bytes
        return cls(seconds, size)

    def reached(self, written_seconds: float | None, size: int) -> bool:
        return size >= self.bytes or (
            written_seconds is not None and written_seconds >= self.seconds - 0.05
        )


@dataclass(frozen=True)
class Cut:
    """The part of the media the MP3 holds: from ``start`` to ``end`` (None: the end)."""

    start: float
    end: float | None
    duration: float

    @classmethod
    def within(cls, options: Effective, duration: float) -> Cut:
        """The options' trim, checked against the probed ``duration`` (0: unknown, not
        checked): a trim or a cover time outside the media is Unconvertible, saying so."""
        if duration > 0:
            for name, at in (("start", options.start), ("cover_at", options.cover_at)):
                if at is not None and at >= duration:
                    raise Unconvertible(
                        f"{name} {at:g} s is past the end of the video, which is"
                        f" {duration:.2f} s long"
                    )
            if options.end is not None and options.end > duration + TRIM_SLACK_SECONDS:
                raise Unconvertible(
                    f"end {options.end:g} s is past the end of the video, which is"
                    f" {duration:.2f} s long"
                )
        return cls(options.start, options.end, duration)

    @property
    def length(self) -> float:
        """How long the MP3 should be (the media's duration for an untrimmed end)."""
        end = self.end if self.end is not None else self.duration
        return max(end - self.start, 0.0)

    @property
    def declared_seconds(self) -> float:
        """What the output bound is measured against: the rest of the media after start
        (0 if the duration is unknown, so the bound is the cap)."""
        return max(self.duration - self.start, 0.0) if self.duration > 0 else 0.0


def plain(bitrate_kbps: int, sample_rate: int) -> Effective:
    """No options but a bitrate and a sample rate: the default job."""
    return effective(
        ConversionOptions(), default_bitrate_kbps=bitrate_kbps, default_sample_rate_hz=sample_rate
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
        *,
        options: Effective | None = None,
        filename: str = "",
        on_start: Callable[[MediaInfo, list[str] | None], None] | None = None,
    ) -> MediaInfo:
        """Write the video's audio track to ``mp3`` as ``options`` say (without them: at
        ``bitrate_kbps`` and ``sample_rate``); returns what the MP3 turned out to be.
        ``on_progress`` gets the fraction done, from ffmpeg's own reports; setting
        ``cancel`` stops this extraction alone (:class:`Cancelled`). ``filename`` is the
        title tag when neither the options nor the video name one. ``on_start`` gets the
        probe once read (command None, so that a refused input shows it too), then the
        probe and the exact command line just before each ffmpeg run (the loudness
        measurement, then the encoding)."""
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
        if options is None:
            options = plain(bitrate_kbps, sample_rate)
        cut = Cut.within(options, source.duration)
        cover_bytes = COVER_BUDGET_BYTES if options.cover_at is not None else 0
        bound = OutputBound.for_media(
            cut.declared_seconds, self.max_media_seconds, _bound_bitrate(options), cover_bytes
        )
        limit = self.deadline.for_duration(bound.seconds)
        cancel = cancel or threading.Event()
        passes = 2 if options.loudness_lufs is not None else 1
        measured = None
        if options.loudness_lufs is not None:
            command = measure_command(video, mp3, options, cut, limit, bound)
            if on_start is not None:
                on_start(source, command)
            measured = _loudnorm_measured(
                self._run(command, mp3, limit, cut.length, _part(on_progress, 0, passes), cancel)
            )
        title = options.title or source.title or filename
        command = extract_command(video, mp3, options, cut, limit, bound, title, measured)
        if on_start is not None:
            on_start(source, command)
        self._run(command, mp3, limit, cut.length, _part(on_progress, passes - 1, passes), cancel)
        report = mp3.with_name(mp3.name + ".progress")
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

    def _run(
        self,
        command: list[str],
        mp3: Path,
        limit: float,
        duration: float,
        on_progress: Callable[[float], None] | None,
        cancel: threading.Event,
    ) -> Path:
        """Run one ffmpeg command (its -progress report and stderr next to ``mp3``) to a
        successful end, or raise what its failure means; returns its stderr's file."""
        errors = mp3.with_name(mp3.name + ".stderr")
        report = mp3.with_name(mp3.name + ".progress")
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
                process, limit, duration, report, on_progress, cancel
            )
        if returncode != 0:
            _raise_for_failure(returncode, stopped_by_us, limit, _last_line(errors))
        return errors

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


def _head(report: Path, limit: float) -> list[str]:
    """What every ffmpeg run starts with: quiet, bounded in time, reporting progress."""
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
    ]


def _input(video: Path, seek: float) -> list[str]:
    """The video as an input: guarded, from ``seek`` seconds on (input seeking: ffmpeg
    decodes from the nearest point before it and drops what precedes, so the cut is
    sample-accurate for audio)."""
    return [*(["-ss", _seconds(seek)] if seek else []), *INPUT_GUARDS, "-i", str(video)]


def _cover_input(video: Path, at: float) -> list[str]:
    """The video again, as the cover's source: one second of it from ``at``, so only a
    few frames are decoded whatever the video's length."""
    return ["-ss", _seconds(at), "-t", "1", *INPUT_GUARDS, "-i", str(video)]


# The cover: the first frame of that second, at most COVER_WIDTH wide, as a JPEG in the
# ID3 tag's attached picture (APIC, front cover). ``select`` rather than ``-frames:v 1``:
# a frame limit on one stream ends the whole output in this ffmpeg.
_COVER_OUTPUT = [
    "-filter:v",
    f"select=eq(n\\,0),scale=w=min({COVER_WIDTH}\\,iw):h=-2",
    "-fps_mode",
    "passthrough",
    "-c:v",
    "mjpeg",
    "-pix_fmt",
    "yuvj420p",
    "-disposition:v",
    "attached_pic",
    "-metadata:s:v",
    "title=Album cover",
    "-metadata:s:v",
    "comment=Cover (front)",
    "-id3v2_version",
    "3",
]


def _audio_filters(options: Effective, loudnorm: str | None) -> list[str]:
    """The audio filter chain, when loudness is normalised: the channel layout first, so
    loudnorm measures what will be written (a stereo pair folded to mono is 3 LU
    quieter by BS.1770), then loudnorm."""
    if loudnorm is None:
        return []
    layout = {1: "aformat=channel_layouts=mono,", 2: "aformat=channel_layouts=stereo,"}
    return ["-af", f"{layout.get(options.channels or 0, '')}{loudnorm}"]


def _loudnorm(options: Effective, measured: dict[str, str] | None) -> str:
    """loudnorm's arguments: the first pass only measures (print_format=json); the
    second applies the target with the first pass's figures, linearly where it can."""
    target = (
        f"loudnorm=I={options.loudness_lufs:g}:TP={LOUDNORM_TRUE_PEAK_DB:g}"
        f":LRA={LOUDNORM_RANGE_LU:g}"
    )
    if measured is None:
        return target + ":print_format=json"
    return (
        f"{target}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true"
    )


def measure_command(
    video: Path, mp3: Path, options: Effective, cut: Cut, limit: float, bound: OutputBound
) -> list[str]:
    """loudnorm's first pass over the part of the audio the MP3 will hold; its figures
    come as JSON at the end of stderr (at loglevel info)."""
    report = mp3.with_name(mp3.name + ".progress")
    command = _head(report, limit)
    command[command.index("-loglevel") + 1] = "info"
    return [
        *command,
        "-nostats",
        *_input(video, cut.start),
        "-vn",
        *("-t", _seconds(_output_seconds(cut, bound))),
        *_audio_filters(options, _loudnorm(options, None)),
        "-f",
        "null",
        "-",
    ]


def extract_command(
    video: Path,
    mp3: Path,
    options: Effective,
    cut: Cut,
    limit: float,
    bound: OutputBound,
    title: str,
    measured: dict[str, str] | None = None,
) -> list[str]:
    """The one ffmpeg command that writes a job's MP3, every option in it. Without options
    it is ffmpeg_extract_audio's command line (192 kb/s, 44.1 kHz, the video's channels)
    with a time limit, a progress report, the input guards, the output bound and the title."""
    report = mp3.with_name(mp3.name + ".progress")
    command = [*_head(report, limit), *_input(video, cut.start)]
    if options.cover_at is not None:
        command += [*_cover_input(video, options.cover_at), "-map", "0:a:0", "-map", "1:v:0"]
        command += _COVER_OUTPUT
    else:
        command += ["-vn"]
    if options.vbr_quality is not None:
        command += ["-q:a", str(options.vbr_quality)]
    else:
        command += ["-ab", f"{options.bitrate_kbps}k"]
    command += ["-ar", str(options.sample_rate_hz)]
    if options.channels is not None:
        command += ["-ac", str(options.channels)]
    if options.loudness_lufs is not None:
        command += _audio_filters(options, _loudnorm(options, measured))
    for tag, value in (("title", title), ("artist", options.artist), ("album", options.album)):
        if value:
            command += ["-metadata", f"{tag}={value}"]
    command += ["-t", _seconds(_output_seconds(cut, bound)), "-fs", str(bound.bytes), str(mp3)]
    return command


def _output_seconds(cut: Cut, bound: OutputBound) -> float:
    """How much the output may hold: the trim's length, never past the output bound."""
    return min(cut.length, bound.seconds) if cut.end is not None else bound.seconds


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _bound_bitrate(options: Effective) -> int:
    """The bitrate the output bound assumes: the CBR rate, or LAME's highest for VBR."""
    return max(CBR_BITRATES_KBPS) if options.vbr_quality is not None else options.bitrate_kbps


def _part(
    on_progress: Callable[[float], None] | None, index: int, count: int
) -> Callable[[float], None] | None:
    """Progress of pass ``index`` of ``count`` as a share of the whole."""
    if on_progress is None or count == 1:
        return on_progress
    return lambda done: on_progress((index + done) / count)


def _loudnorm_measured(errors: Path) -> dict[str, str]:
    """The first pass's figures: the last JSON object loudnorm wrote to stderr."""
    text = errors.read_bytes()[-8192:].decode(errors="replace")
    start, end = text.rfind("{"), text.rfind("}")
    try:
        figures = json.loads(text[start : end + 1])
        measured = {key: str(figures[key]) for key in _LOUDNORM_FIGURES}
    except (ValueError, KeyError) as exc:
        raise Unconvertible("ffmpeg could not measure the audio's loudness") from exc
    if any(not _NUMBER.match(value) for value in measured.values()):
        # -inf: silence (nothing to normalise), or a part too short to measure.
        raise Unconvertible(
            "the audio's loudness cannot be measured (silent, or shorter than 0.4 s),"
            " so it cannot be normalised; convert it without loudness_lufs"
        )
    return measured


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
