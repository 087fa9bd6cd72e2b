"""The conversion options' one home (mp3mesh/core/options.py) and the ffmpeg command the
converter builds from them (mp3mesh/converter/transcode.py), without running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mp3mesh.converter.transcode import (
    Cut,
    OutputBound,
    Unconvertible,
    extract_command,
    measure_command,
)
from mp3mesh.core import options
from mp3mesh.core.defaults import OPTION_QUERY_NAMES
from mp3mesh.files.v1.files_pb2 import ConversionOptions

VIDEO, MP3 = Path("/w/video"), Path("/w/audio.mp3")


def command(
    chosen: ConversionOptions, duration: float = 60.0, title: str = "clip.mp4"
) -> list[str]:
    effective = options.effective(chosen)
    cut = Cut.within(effective, duration)
    bound = OutputBound.for_media(cut.declared_seconds, 6 * 3600, effective.bitrate_kbps)
    return extract_command(VIDEO, MP3, effective, cut, 90.0, bound, title)


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_rest_names_are_the_fields_of_conversion_options() -> None:
    assert set(OPTION_QUERY_NAMES) == {f.name for f in ConversionOptions.DESCRIPTOR.fields}
    assert options.query_name("bitrate_kbps") == "metadata.options.bitrate_kbps"
    assert options.query_name("metadata.filename") == "metadata.filename"


def test_no_options_is_the_default_command() -> None:
    argv = command(ConversionOptions())
    assert (after(argv, "-ab"), after(argv, "-ar")) == ("192k", "44100")
    assert "-vn" in argv and after(argv, "-metadata") == "title=clip.mp4"
    for absent in ("-ac", "-af", "-q:a", "-map", "-ss"):
        assert absent not in argv, absent
    assert argv[-1] == str(MP3)


def test_each_option_lands_in_the_command() -> None:
    chosen = ConversionOptions(
        vbr_quality=0, channels="mono", sample_rate_hz=22050, start="1:00", end="90",
        loudness_lufs=-16, artist="A", cover_at="5",
    )  # fmt: skip
    argv = command(chosen, duration=120.0)
    assert after(argv, "-q:a") == "0" and "-ab" not in argv
    assert (after(argv, "-ac"), after(argv, "-ar")) == ("1", "22050")
    output_length = argv[len(argv) - 1 - argv[::-1].index("-t") + 1]
    assert after(argv, "-ss") == "60.000" and output_length == "30.000"
    assert after(argv, "-af").startswith("aformat=channel_layouts=mono,loudnorm=I=-16")
    assert "artist=A" in argv and "attached_pic" in argv
    assert argv.count("-i") == 2 and "5.000" in argv


def test_loudness_measures_first_then_applies_the_figures() -> None:
    effective = options.effective(ConversionOptions(loudness_lufs=-23))
    cut = Cut.within(effective, 10.0)
    bound = OutputBound.for_media(10.0, 3600, 192)
    first = measure_command(VIDEO, MP3, effective, cut, 60.0, bound)
    assert after(first, "-af") == "loudnorm=I=-23:TP=-1.5:LRA=11:print_format=json"
    assert first[-3:] == ["-f", "null", "-"]
    figures = {"input_i": "-30.1", "input_tp": "-12.0", "input_lra": "1.0",
               "input_thresh": "-40.2", "target_offset": "0.3"}  # fmt: skip
    second = extract_command(VIDEO, MP3, effective, cut, 60.0, bound, "t", figures)
    assert "measured_I=-30.1:measured_TP=-12.0" in after(second, "-af")
    assert after(second, "-af").endswith("offset=0.3:linear=true")


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (
            ConversionOptions(start="30"),
            "start 30 s is past the end of the video, which is 6.00 s long",
        ),
        (ConversionOptions(end="7"), "end 7 s is past the end of the video, which is 6.00 s long"),
        (ConversionOptions(cover_at="0:06"), "cover_at 6 s is past the end of the video"),
    ],
)
def test_a_trim_outside_the_media_is_unconvertible(chosen: ConversionOptions, message: str) -> None:
    with pytest.raises(Unconvertible, match=message):
        Cut.within(options.effective(chosen), 6.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("12.5", 12.5), ("1:30", 90.0), ("01:02:03.250", 3723.25), ("0:00.1", 0.1)],
)
def test_times(text: str, seconds: float) -> None:
    assert options.parse_time("start", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1:75", "1:60:00", "-5", "1::2", "9" * 40])
def test_bad_times_name_the_field(text: str) -> None:
    with pytest.raises(options.OptionError, match=r"^end: "):
        options.parse_time("end", text)


@pytest.mark.parametrize(
    ("chosen", "starts"),
    [
        (ConversionOptions(bitrate_kbps=100), "bitrate_kbps: 100 is not a LAME constant bitrate"),
        (ConversionOptions(bitrate_kbps=-1), "bitrate_kbps: -1"),
        (ConversionOptions(vbr_quality=10), "vbr_quality: 10 is out of range; 0 (best) to 9"),
        (ConversionOptions(vbr_quality=-1), "vbr_quality: -1 is out of range"),
        (ConversionOptions(bitrate_kbps=128, vbr_quality=0), "vbr_quality: give either"),
        (ConversionOptions(channels="5.1"), "channels: '5.1' is not one of mono, stereo"),
        (ConversionOptions(sample_rate_hz=96000), "sample_rate_hz: 96000 is not one of 22050"),
        (ConversionOptions(start="3", end="3"), "end: '3' is not after start '3'"),
        (ConversionOptions(loudness_lufs=-80), "loudness_lufs: -80 is out of range; -70 to -5"),
        (ConversionOptions(loudness_lufs=0), "loudness_lufs: 0 is out of range"),
        (ConversionOptions(title="x" * 256), "title: longer than 255 characters"),
        (ConversionOptions(preset="podcast"), "preset: no preset named 'podcast'; one of default"),
    ],
)
def test_out_of_range_names_the_field_and_its_range(chosen: ConversionOptions, starts: str) -> None:
    with pytest.raises(options.OptionError) as exc:
        options.resolve(chosen)
    assert str(exc.value).startswith(starts), str(exc.value)


def test_presets_are_valid_and_a_job_overrides_them() -> None:
    names = [p.name for p in options.preset_protos()]
    assert names[0] == "default"
    assert {"music-320", "podcast-mono-64", "voice-normalized"} <= set(names)
    for preset in options.preset_protos():
        options.validate(preset.options)
    resolved = options.resolve(ConversionOptions(preset="voice-normalized", bitrate_kbps=96))
    assert not resolved.HasField("vbr_quality") and resolved.bitrate_kbps == 96
    assert (resolved.channels, resolved.loudness_lufs) == ("mono", -16)
    kept = options.from_record(options.to_record(resolved))
    assert kept == resolved
    assert options.effective(ConversionOptions(preset="default")) == options.effective(
        ConversionOptions()
    )
