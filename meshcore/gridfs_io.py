"""Streaming GridFS reads in bounded windows, and clean removal of partial files.

GridFS's own reader asks for every remaining chunk with one cursor. A real MongoDB
returns that in batches, but the nx-27017 stand-in ignores batch limits and fails past
48 MB, so reads here go ``WINDOW`` chunks per query. Memory stays at one window whatever
the file size, and the queries are plain ones a real MongoDB answers the same way.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.synchronous.database import Database

WINDOW = 16  # chunks per query: 16 x 255 KiB = about 4 MiB in memory at most

VIDEOS = "videos"
MP3S = "mp3s"


class MissingFile(LookupError):
    pass


class CorruptFile(RuntimeError):
    pass


def _windows(files_doc: dict[str, Any]) -> Iterator[tuple[int, int]]:
    total = math.ceil(files_doc["length"] / files_doc["chunkSize"]) if files_doc["length"] else 0
    for first in range(0, total, WINDOW):
        yield first, min(first + WINDOW, total)


def _check(chunk: dict[str, Any], expected_n: int, file_id: ObjectId) -> bytes:
    if chunk["n"] != expected_n:
        raise CorruptFile(f"file {file_id}: chunk {expected_n} is missing")
    return bytes(chunk["data"])


def iter_file(db: Database[Any], bucket: str, file_id: ObjectId) -> Iterator[bytes]:
    files_doc = db[f"{bucket}.files"].find_one({"_id": file_id})
    if files_doc is None:
        raise MissingFile(f"no file {file_id} in {bucket}")
    for first, end in _windows(files_doc):
        cursor = db[f"{bucket}.chunks"].find(
            {"files_id": file_id, "n": {"$gte": first, "$lt": end}}, sort=[("n", 1)]
        )
        n = first
        for chunk in cursor:
            yield _check(chunk, n, file_id)
            n += 1
        if n != end:
            raise CorruptFile(f"file {file_id}: chunk {n} is missing")


async def aiter_file(
    db: AsyncDatabase[Any], bucket: str, file_id: ObjectId, files_doc: dict[str, Any] | None = None
) -> AsyncIterator[bytes]:
    if files_doc is None:
        files_doc = await db[f"{bucket}.files"].find_one({"_id": file_id})
    if files_doc is None:
        raise MissingFile(f"no file {file_id} in {bucket}")
    for first, end in _windows(files_doc):
        cursor = db[f"{bucket}.chunks"].find(
            {"files_id": file_id, "n": {"$gte": first, "$lt": end}}, sort=[("n", 1)]
        )
        n = first
        async for chunk in cursor:
            yield _check(chunk, n, file_id)
            n += 1
        if n != end:
            raise CorruptFile(f"file {file_id}: chunk {n} is missing")


def discard(db: Database[Any], bucket: str, file_id: Any) -> None:
    """Remove a file or the chunks of a partial upload (which has no files document yet)."""
    db[f"{bucket}.chunks"].delete_many({"files_id": file_id})
    if db[f"{bucket}.files"].find_one({"_id": file_id}, {"_id": 1}) is not None:
        db[f"{bucket}.files"].delete_one({"_id": file_id})


async def adiscard(db: AsyncDatabase[Any], bucket: str, file_id: Any) -> None:
    await db[f"{bucket}.chunks"].delete_many({"files_id": file_id})
    if await db[f"{bucket}.files"].find_one({"_id": file_id}, {"_id": 1}) is not None:
        await db[f"{bucket}.files"].delete_one({"_id": file_id})
