"""The shim's tus header rules (mp3mesh/shim/tus.py) and the page's vendored tus client."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from mp3mesh.files.v1 import files_pb2
from mp3mesh.shim.errors import HttpError
from mp3mesh.shim.tus import encode_metadata, parse_checksum, parse_metadata, start_request

ROOT = Path(__file__).resolve().parents[2]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_maps_filename_and_filetype_and_keeps_the_rest() -> None:
    header = (
        f"filename {_b64('clip één.mp4')},filetype {_b64('video/mp4')},preset {_b64('voice')},flag"
    )
    fields, extra = parse_metadata(header)
    assert fields == {"filename": "clip één.mp4", "content_type": "video/mp4"}
    assert extra == {"preset": "voice", "flag": ""}
    upload = files_pb2.ResumableUpload(
        metadata=files_pb2.UploadMetadata(filename="a.mp4", content_type="video/mp4"),
        extra_metadata={"preset": "voice"},
    )
    assert parse_metadata(encode_metadata(upload)) == (
        {"filename": "a.mp4", "content_type": "video/mp4"},
        {"preset": "voice"},
    )


def test_option_keys_set_the_options_and_are_kept_as_sent() -> None:
    """Option keys are read as their query parameters are; every key but filename and
    filetype stays in extra_metadata, so HEAD gives the header back as it came."""
    header = ",".join(
        f"{key} {_b64(value)}"
        for key, value in (
            ("filename", "talk.mp4"),
            ("bitrate_kbps", "64"),
            ("channels", "mono"),
            ("loudness_lufs", "-16.5"),
            ("vbr_quality", "0"),
            ("title", "Talk, één"),
            ("note", "kept"),
        )
    )
    start = start_request(header, 1234)
    assert start.total_size == 1234 and start.metadata.filename == "talk.mp4"
    assert start.metadata.options == files_pb2.ConversionOptions(
        bitrate_kbps=64, channels="mono", loudness_lufs=-16.5, vbr_quality=0, title="Talk, één"
    )
    assert start.metadata.options.HasField("vbr_quality")  # 0 is a quality, not unset
    assert dict(start.extra_metadata) == {
        "bitrate_kbps": "64",
        "channels": "mono",
        "loudness_lufs": "-16.5",
        "vbr_quality": "0",
        "title": "Talk, één",
        "note": "kept",
    }
    assert start_request("", 5).metadata.options == files_pb2.ConversionOptions()


@pytest.mark.parametrize(
    ("key", "value"),
    [("bitrate_kbps", "fast"), ("sample_rate_hz", "44.1k"), ("loudness_lufs", "loud")],
)
def test_an_option_that_is_no_number_is_400_naming_it(key: str, value: str) -> None:
    with pytest.raises(HttpError) as refused:
        start_request(f"{key} {_b64(value)}", 5)
    assert refused.value.code.value[0] == 3
    assert f'metadata.options.{key}: invalid value "{value}"' in refused.value.message


@pytest.mark.parametrize(
    "header", ["filename ???", f"a {_b64('x')},a {_b64('y')}", "a b c", _b64("x") + " " + "\xff"]
)
def test_malformed_metadata_is_400(header: str) -> None:
    with pytest.raises(HttpError) as refused:
        parse_metadata(header)
    assert refused.value.code.value[0] == 3


def test_checksum_header() -> None:
    digest = hashlib.sha1(b"abc", usedforsecurity=False).digest()
    assert parse_checksum(None) == b""
    assert parse_checksum("sha1 " + base64.b64encode(digest).decode()) == digest
    for bad in ("md5 " + base64.b64encode(digest).decode(), "sha1 !!", "sha1 " + _b64("short")):
        with pytest.raises(HttpError):
            parse_checksum(bad)


def test_the_page_serves_the_pinned_tus_client() -> None:
    """mp3mesh/shim/web/tus.min.js is the dist file of the tus-js-client package.json pins
    (copy it again after changing the pin)."""
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["tus-js-client"]
    package = ROOT / "node_modules/tus-js-client"
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    vendored = ROOT / "mp3mesh/shim/web/tus.min.js"
    assert vendored.read_bytes() == (package / "dist/tus.min.js").read_bytes()
