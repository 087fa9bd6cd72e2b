"""Conversion options: their ranges, the presets, and how a job's options are resolved.

The one home of what a job may ask for (mp3mesh.files.v1.ConversionOptions): the gateway
checks an upload's options here before a byte is stored, the shim maps the REST names
onto the request with it, the CLI builds its request from it, and the converter turns the
resolved options into ffmpeg's arguments (:func:`effective`, then mp3mesh/converter/transcode.py).

Each refusal names the field by its REST name (which is also its field name in
ConversionOptions) and says what is allowed, so one message serves every client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from mp3mesh.core.defaults import OPTION_QUERY_NAMES, OPTION_QUERY_PREFIX
from mp3mesh.core.limits import MAX_FILENAME_LENGTH
from mp3mesh.files.v1 import files_pb2

# LAME's constant bitrates for MPEG-1 Layer III (the sample rates below are all MPEG-1
# but 22050, where LAME picks the nearest MPEG-2 rate the same way).
CBR_BITRATES_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
VBR_QUALITY_RANGE = (0, 9)
CHANNELS = {"mono": 1, "stereo": 2}
SAMPLE_RATES_HZ = (22050, 32000, 44100, 48000)
LOUDNESS_LUFS_RANGE = (-70.0, -5.0)
MAX_TAG_LENGTH = MAX_FILENAME_LENGTH
MAX_TIME_LENGTH = 32
# What loudnorm aims at besides the integrated loudness: EBU R128's true-peak ceiling
# and loudness range, ffmpeg's defaults.
LOUDNORM_TRUE_PEAK_DB = -1.5
LOUDNORM_RANGE_LU = 11.0

# The defaults of every job (the converter's MP3_BITRATE_KBPS and MP3_SAMPLE_RATE may
# change the first two for a deployment; the "default" preset shows these).
DEFAULT_BITRATE_KBPS = 192
DEFAULT_SAMPLE_RATE_HZ = 44100

FIELDS = OPTION_QUERY_NAMES
QUERY_PREFIX = OPTION_QUERY_PREFIX

_TIME = re.compile(r"^(?:(?:(\d{1,3}):)?(\d{1,2}):)?(\d+(?:\.\d{1,6})?)$")
TIME_FORMAT = 'seconds ("90", "12.5") or [hh:]mm:ss[.ms] ("1:30", "01:02:03.250")'


class OptionError(ValueError):
    """An option out of range; the message names the field and what is allowed."""


@dataclass(frozen=True)
class PresetDef:
    name: str
    description: str
    values: dict[str, Any]


PRESETS: tuple[PresetDef, ...] = (
    PresetDef(
        "default",
        "What a job gets when it asks for nothing: 192 kb/s CBR, 44.1 kHz, the video's channels",
        {"bitrate_kbps": DEFAULT_BITRATE_KBPS, "sample_rate_hz": DEFAULT_SAMPLE_RATE_HZ},
    ),
    PresetDef(
        "music-320",
        "Music at LAME's highest constant bitrate: 320 kb/s, 44.1 kHz stereo",
        {"bitrate_kbps": 320, "sample_rate_hz": 44100, "channels": "stereo"},
    ),
    PresetDef(
        "podcast-mono-64",
        "Speech, small files: 64 kb/s mono, 44.1 kHz, normalised to -16 LUFS",
        {"bitrate_kbps": 64, "sample_rate_hz": 44100, "channels": "mono", "loudness_lufs": -16.0},
    ),
    PresetDef(
        "voice-normalized",
        "Voice at variable bitrate (LAME -q:a 4), mono, 44.1 kHz, normalised to -16 LUFS",
        {"vbr_quality": 4, "sample_rate_hz": 44100, "channels": "mono", "loudness_lufs": -16.0},
    ),
)
PRESETS_BY_NAME = {preset.name: preset for preset in PRESETS}


def preset_protos() -> list[files_pb2.Preset]:
    """Every preset as ListPresets shows it, "default" first."""
    return [
        files_pb2.Preset(
            name=preset.name,
            description=preset.description,
            options=files_pb2.ConversionOptions(**preset.values),
        )
        for preset in PRESETS
    ]


def parse_time(field: str, text: str) -> float:
    """Seconds from "90", "12.5", "1:30" or "01:02:03.250"; OptionError naming ``field``."""
    match = _TIME.match(text.strip()) if len(text) <= MAX_TIME_LENGTH else None
    if match is None:
        raise OptionError(f"{field}: {text[:MAX_TIME_LENGTH]!r} is not a time; use {TIME_FORMAT}")
    hours, minutes, seconds = match.groups()
    if (hours or minutes) and float(seconds) >= 60:
        raise OptionError(f"{field}: {text!r} has {seconds} seconds; use 0-59.999 after a colon")
    if hours and int(minutes) >= 60:
        raise OptionError(f"{field}: {text!r} has {minutes} minutes; use 0-59 after the hours")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def validate(options: files_pb2.ConversionOptions) -> None:
    """OptionError for the first value out of range (preset included)."""
    if options.preset and options.preset not in PRESETS_BY_NAME:
        raise OptionError(f"preset: no preset named {options.preset[:64]!r}; one of {_names()}")
    if options.bitrate_kbps and options.bitrate_kbps not in CBR_BITRATES_KBPS:
        raise OptionError(
            f"bitrate_kbps: {options.bitrate_kbps} is not a LAME constant bitrate; one of"
            f" {', '.join(map(str, CBR_BITRATES_KBPS))} (kb/s)"
        )
    if options.HasField("vbr_quality"):
        low, high = VBR_QUALITY_RANGE
        if not low <= options.vbr_quality <= high:
            raise OptionError(
                f"vbr_quality: {options.vbr_quality} is out of range; {low} (best) to {high}"
            )
        if options.bitrate_kbps:
            raise OptionError(
                "vbr_quality: give either bitrate_kbps (constant bitrate) or vbr_quality"
                " (variable bitrate), not both"
            )
    if options.channels and options.channels not in CHANNELS:
        raise OptionError(f"channels: {options.channels[:32]!r} is not one of mono, stereo")
    if options.sample_rate_hz and options.sample_rate_hz not in SAMPLE_RATES_HZ:
        raise OptionError(
            f"sample_rate_hz: {options.sample_rate_hz} is not one of"
            f" {', '.join(map(str, SAMPLE_RATES_HZ))} (Hz)"
        )
    start = parse_time("start", options.start) if options.start else 0.0
    if options.end and parse_time("end", options.end) <= start:
        raise OptionError(f"end: {options.end!r} is not after start {options.start or '0'!r}")
    if options.cover_at:
        parse_time("cover_at", options.cover_at)
    if options.HasField("loudness_lufs"):
        low_lufs, high_lufs = LOUDNESS_LUFS_RANGE
        if not low_lufs <= options.loudness_lufs <= high_lufs:
            raise OptionError(
                f"loudness_lufs: {options.loudness_lufs:g} is out of range; {low_lufs:g} to"
                f" {high_lufs:g} (LUFS, e.g. -16)"
            )
    for field in ("title", "artist", "album"):
        if len(getattr(options, field)) > MAX_TAG_LENGTH:
            raise OptionError(f"{field}: longer than {MAX_TAG_LENGTH} characters")


def resolve(options: files_pb2.ConversionOptions) -> files_pb2.ConversionOptions:
    """The options a job keeps: ``options`` checked, over its preset's values. Naming a
    bitrate or a VBR quality replaces the preset's choice of either."""
    validate(options)
    if not options.preset:
        return options
    base = files_pb2.ConversionOptions(preset=options.preset)
    values = dict(PRESETS_BY_NAME[options.preset].values)
    if options.bitrate_kbps or options.HasField("vbr_quality"):
        values.pop("bitrate_kbps", None)
        values.pop("vbr_quality", None)
    json_format.ParseDict(values, base)
    base.MergeFrom(options)
    return base


def to_record(options: files_pb2.ConversionOptions) -> dict[str, Any]:
    """The options as the job record keeps them (only what is set)."""
    return json_format.MessageToDict(options, preserving_proto_field_name=True)


def from_record(doc: dict[str, Any] | None) -> files_pb2.ConversionOptions:
    return json_format.ParseDict(
        doc or {}, files_pb2.ConversionOptions(), ignore_unknown_fields=True
    )


def query_name(name: str) -> str:
    """A REST option name (``bitrate_kbps``) as the request field it sets
    (``metadata.options.bitrate_kbps``); any other name as it is."""
    return QUERY_PREFIX + name if name in FIELDS else name


@dataclass(frozen=True)
class Effective:
    """What the converter does for a job: every option decided, times in seconds."""

    bitrate_kbps: int
    vbr_quality: int | None
    channels: int | None
    sample_rate_hz: int
    start: float
    end: float | None
    loudness_lufs: float | None
    title: str
    artist: str
    album: str
    cover_at: float | None

    @property
    def trimmed(self) -> bool:
        return self.start > 0 or self.end is not None


def effective(
    options: files_pb2.ConversionOptions,
    *,
    default_bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
    default_sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ,
) -> Effective:
    """The job's options with the defaults filled in (OptionError: a record written with
    values out of range, which the gateway never does)."""
    validate(options)
    return Effective(
        bitrate_kbps=options.bitrate_kbps or default_bitrate_kbps,
        vbr_quality=options.vbr_quality if options.HasField("vbr_quality") else None,
        channels=CHANNELS.get(options.channels),
        sample_rate_hz=options.sample_rate_hz or default_sample_rate_hz,
        start=parse_time("start", options.start) if options.start else 0.0,
        end=parse_time("end", options.end) if options.end else None,
        loudness_lufs=options.loudness_lufs if options.HasField("loudness_lufs") else None,
        title=options.title,
        artist=options.artist,
        album=options.album,
        cover_at=parse_time("cover_at", options.cover_at) if options.cover_at else None,
    )


def _names() -> str:
    return ", ".join(PRESETS_BY_NAME)
