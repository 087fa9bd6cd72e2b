"""Range, If-Range and If-None-Match as the edges read them (mp3mesh/shim/ranges.py)."""

from __future__ import annotations

import pytest

from mp3mesh.shim.app import FILE_SERVICE
from mp3mesh.shim.openapi import openapi_document
from mp3mesh.shim.ranges import ByteRange, none_match, parse_range, range_applies
from mp3mesh.shim.rules import routes_for

SIZE = 1000
ETAG = '"abc-1000"'


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-499", (0, 500)),
        ("bytes=500-", (500, 1000)),
        ("bytes=-200", (800, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("BYTES = 1-1", (1, 2)),
        ("bytes=999-999", (999, 1000)),
    ],
)
def test_satisfiable_ranges(header: str, span: tuple[int, int]) -> None:
    wanted = parse_range(header)
    assert wanted is not None and wanted.resolve(SIZE) == span


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1001", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    wanted = parse_range(header)
    assert wanted is not None and wanted.resolve(SIZE) is None


@pytest.mark.parametrize(
    "header", [None, "", "bytes=0-1,5-9", "items=0-1", "bytes=5-1", "bytes=-", "bytes=a-b"]
)
def test_ranges_not_honoured_get_the_whole_file(header: str | None) -> None:
    assert parse_range(header) is None


def test_guess_asks_for_the_range_before_the_size_is_known() -> None:
    assert ByteRange(10, 19).guess() == (10, 10)
    assert ByteRange(10, None).guess() == (10, 0)
    assert ByteRange(None, None, 5).guess() == (0, 0)


def test_validators() -> None:
    assert none_match(ETAG, ETAG) and none_match(f'"x", W/{ETAG}', ETAG) and none_match("*", ETAG)
    assert not none_match('"other"', ETAG) and not none_match(None, ETAG)
    assert range_applies(None, ETAG) and range_applies(ETAG, ETAG)
    assert not range_applies('"other"', ETAG)
    assert not range_applies(f"W/{ETAG}", ETAG)  # If-Range compares strongly
    assert not range_applies("Sat, 05 Dec 2026 08:00:00 GMT", ETAG)


def test_openapi_describes_the_ranged_answers() -> None:
    paths = openapi_document(list(routes_for(FILE_SERVICE)))["paths"]
    for path in ("/download", "/v1/mp3s/{file_id}"):
        operation = paths[path]["get"]
        assert {"200", "206", "304", "416", "default"} <= set(operation["responses"])
        names = {p["name"] for p in operation["parameters"]}
        assert {"Range", "If-Range", "If-None-Match"} <= names
        assert not names & {"readOffset", "read_offset", "readLimit", "read_limit"}
