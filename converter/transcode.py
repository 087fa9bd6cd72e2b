"""Audio extraction with MoviePy's ffmpeg tools: one ffmpeg process, no frame decoding in Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos
from moviepy.video.io.ffmpeg_tools import ffmpeg_extract_audio


class Unconvertible(Exception):
    """The input can never become an MP3; the message tells the user why."""


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    has_video: bool
    has_audio: bool


def probe(path: Path) -> MediaInfo:
    try:
        infos = ffmpeg_parse_infos(str(path))
    except OSError as exc:
        raise Unconvertible(
            "the uploaded file is not a video ffmpeg can read (invalid or unsupported data)"
        ) from exc
    return MediaInfo(
        duration=float(infos.get("duration") or 0.0),
        has_video=bool(infos.get("video_found")),
        has_audio=bool(infos.get("audio_found")),
    )


def extract_mp3(video: Path, mp3: Path, bitrate_kbps: int, sample_rate: int) -> MediaInfo:
    """Write the video's audio track to ``mp3``; returns what the MP3 turned out to be."""
    source = probe(video)
    if not source.has_video:
        raise Unconvertible("the uploaded file has no video stream; upload a video file")
    if not source.has_audio:
        raise Unconvertible("the video has no audio track, so there is nothing to convert to MP3")
    try:
        ffmpeg_extract_audio(video, mp3, bitrate=bitrate_kbps, fps=sample_rate, logger=None)
    except OSError as exc:
        last = str(exc).strip().splitlines()[-1:] or ["unknown error"]
        raise Unconvertible(f"ffmpeg could not extract the audio: {last[0]}") from exc
    return probe(mp3)
