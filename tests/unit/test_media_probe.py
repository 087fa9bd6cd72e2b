"""mp3mesh/converter/media_probe.py: the job's probe record read from ffmpeg's own report."""
# ruff: noqa: E501

from __future__ import annotations

from mp3mesh.converter.media_probe import describe

# A real report's lines, some longer than this file's lines may be.
REPORT = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from '/tmp/mp3mesh-1-x/video':
  Metadata:
    major_brand     : isom
  Duration: 00:01:02.50, start: 0.000000, bitrate: 97 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 64x48, 14 kb/s, 25 fps (default)
    Metadata:
      handler_name    : VideoHandler
  Stream #0:1[0x2](eng): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, 5.1, fltp, 384 kb/s (default)
  Stream #0:2: Subtitle: mov_text (tx3g / 0x67337874), 0 kb/s
At least one output file must be specified
"""


def test_container_duration_bitrate_and_each_stream() -> None:
    info = describe(REPORT)
    assert info["container"] == "mov,mp4,m4a,3gp,3g2,mj2"
    assert info["duration"] == 62.5 and info["bit_rate"] == 97000
    assert info["streams"] == [
        {"index": 0, "type": "video", "codec": "h264", "bit_rate": 14000},
        {"index": 1, "type": "audio", "codec": "aac", "bit_rate": 384000,
         "sample_rate": 48000, "channel_layout": "5.1"},
        {"index": 2, "type": "subtitle", "codec": "mov_text", "bit_rate": 0},
    ]  # fmt: skip


def test_what_it_cannot_read_stays_empty() -> None:
    assert describe("not ffmpeg at all") == {
        "container": "", "duration": 0.0, "bit_rate": 0, "streams": []
    }  # fmt: skip
    assert describe("  Duration: N/A, bitrate: N/A\n")["duration"] == 0.0
