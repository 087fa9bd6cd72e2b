"""HTTP range requests (RFC 9110, sections 13 and 14) for downloads.

Both edges serve ``GET /download?fid=`` and ``GET /v1/mp3s/{id}`` through the shim (Envoy
routes them here), so one implementation gives both the same answers. What is decided
here is pure: which bytes, and which status; the bytes come from FileService.Download's
``read_offset``/``read_limit``.

One range per request: a multi-range request (``bytes=0-1,5-9``) gets the whole file
(200), which RFC 9110 allows (a server may ignore Range); so does a malformed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    """A single ``bytes=`` range as asked: ``first``-``last`` (``last`` None: to the end),
    or the last ``suffix`` bytes."""

    first: int | None
    last: int | None
    suffix: int | None = None

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The bytes ``[start, stop)`` of a ``size``-byte file, or None if unsatisfiable."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                return None
            return max(size - self.suffix, 0), size
        assert self.first is not None
        if self.first >= size:
            return None
        stop = size if self.last is None else min(self.last + 1, size)
        return self.first, stop

    def guess(self) -> tuple[int, int]:
        """``read_offset`` and ``read_limit`` to ask for before the size is known (a
        suffix range needs the size: the whole file is asked, and asked again if so)."""
        if self.first is None:
            return 0, 0
        return self.first, 0 if self.last is None else self.last + 1 - self.first


def parse_range(header: str | None) -> ByteRange | None:
    """The single byte range of a Range header; None when there is none to honour
    (absent, several ranges, another unit, or not well formed)."""
    if not header:
        return None
    found = _RANGE.fullmatch(header)
    if found is None:
        return None
    first, last = found.groups()
    if not first:
        return ByteRange(None, None, int(last)) if last else None
    if last and int(last) < int(first):
        return None
    return ByteRange(int(first), int(last) if last else None)


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """If-None-Match names this entity (weak comparison, or ``*``): answer 304."""
    if not header:
        return False
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == opaque for tag in _tags(header))


def range_applies(if_range: str | None, etag: str) -> bool:
    """If-Range absent, or naming this entity exactly (strong comparison). A date, or a
    tag that does not match, means the client's copy is another one: send it all."""
    if if_range is None:
        return True
    value = if_range.strip()
    return not value.startswith("W/") and value == etag


def content_range(start: int, stop: int, size: int) -> str:
    return f"bytes {start}-{stop - 1}/{size}"


def unsatisfied_range(size: int) -> str:
    return f"bytes */{size}"
