"""Streaming GridFS reads and writes in bounded windows, and removal of partial files.

The layout is the GridFS spec's (``<bucket>.files`` and ``<bucket>.chunks``), so files
written here are ordinary GridFS files for any driver, and the queries are plain ones a
real MongoDB answers the same way. Why not pymongo's GridIn/GridOut:

- GridIn batches chunk documents until they reach the 48 MB maximum message size before
  inserting them, so an upload holds up to ~100 MB (measured: +151 MiB RSS in the gateway
  for a 55 MiB upload). Writes here go ``WINDOW`` chunks per insert.
- GridOut asks for all remaining chunks with one cursor, however large the file (and the
  stand-in fails past 48 MB in one reply: mp3mesh/core/nx27017.py). Reads here go ``WINDOW``
  chunks per query.

Memory stays at one window (about 4 MiB) whatever the file size.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.synchronous.database import Database

WINDOW = 16  # chunks per query or insert: 16 x 255 KiB = about 4 MiB in memory at most
CHUNK_SIZE = 255 * 1024  # the GridFS default

VIDEOS = "videos"
MP3S = "mp3s"


class MissingFile(LookupError):
    pass


class CorruptFile(RuntimeError):
    pass


class _Window:
    """``WINDOW`` consecutive chunks of one file: the query that reads them, and the check
    that they came back complete and in order (a gap means the file is corrupt).

    ``cut`` is the byte range ``[start, stop)`` of the file wanted: the first and last
    chunks of a ranged read give only their part of it."""

    def __init__(
        self, file_id: Any, first: int, end: int, cut: tuple[int, int, int] | None = None
    ) -> None:
        self.file_id, self.end, self._next = file_id, end, first
        self.query = {"files_id": file_id, "n": {"$gte": first, "$lt": end}}
        self.sort = [("n", 1)]
        self._cut = cut  # (chunk_size, start, stop)

    def data(self, chunk: dict[str, Any]) -> bytes:
        """The chunk's bytes (its wanted part), if it is the next one expected."""
        if chunk["n"] != self._next:
            raise CorruptFile(f"file {self.file_id}: chunk {self._next} is missing")
        self._next += 1
        if self._cut is None:
            return bytes(chunk["data"])
        chunk_size, start, stop = self._cut
        base = chunk["n"] * chunk_size
        return bytes(chunk["data"][max(start - base, 0) : max(stop - base, 0)])

    def check_complete(self) -> None:
        if self._next != self.end:
            raise CorruptFile(f"file {self.file_id}: chunk {self._next} is missing")


def _windows(
    bucket: str,
    file_id: Any,
    files_doc: dict[str, Any] | None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[_Window]:
    """The windows a file's chunks (those holding bytes ``[start, stop)``, by default all)
    are read in; MissingFile without a files document. A range starts at the chunk that
    holds its first byte: nothing before it is read."""
    if files_doc is None:
        raise MissingFile(f"no file {file_id} in {bucket}")
    length, chunk_size = files_doc["length"], files_doc["chunkSize"]
    stop = length if stop is None else min(stop, length)
    if start <= 0 and stop == length:
        first, total, cut = 0, math.ceil(length / chunk_size) if length else 0, None
    elif start >= stop:
        return
    else:
        first, total = start // chunk_size, math.ceil(stop / chunk_size)
        cut = (chunk_size, start, stop)
    for n in range(first, total, WINDOW):
        yield _Window(file_id, n, min(n + WINDOW, total), cut)


def iter_file(db: Database[Any], bucket: str, file_id: ObjectId) -> Iterator[bytes]:
    files_doc = db[f"{bucket}.files"].find_one({"_id": file_id})
    for window in _windows(bucket, file_id, files_doc):
        for chunk in db[f"{bucket}.chunks"].find(window.query, sort=window.sort):
            yield window.data(chunk)
        window.check_complete()


async def aiter_file(
    db: AsyncDatabase[Any], bucket: str, file_id: ObjectId, files_doc: dict[str, Any] | None = None
) -> AsyncIterator[bytes]:
    async for window in aiter_windows(db, bucket, file_id, files_doc):
        for chunk in window:
            yield chunk


async def aiter_windows(
    db: AsyncDatabase[Any],
    bucket: str,
    file_id: ObjectId,
    files_doc: dict[str, Any] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> AsyncIterator[list[bytes]]:
    """The file's chunks a window at a time, the next window read while the caller handles
    this one (storage and the caller's sending overlap): two windows in memory at most.
    With ``start``/``stop``, only bytes ``[start, stop)``, from the chunk holding ``start``."""
    if files_doc is None:
        files_doc = await db[f"{bucket}.files"].find_one({"_id": file_id})
    chunks = db[f"{bucket}.chunks"]

    async def read(window: _Window) -> list[bytes]:
        data = [window.data(chunk) async for chunk in chunks.find(window.query, sort=window.sort)]
        window.check_complete()
        return data

    reading: asyncio.Task[list[bytes]] | None = None
    try:
        for window in _windows(bucket, file_id, files_doc, start, stop):
            previous, reading = reading, asyncio.ensure_future(read(window))
            if previous is not None:
                yield await previous
        if reading is not None:
            yield await reading
    finally:
        if reading is not None and not reading.done():
            reading.cancel()  # the caller stopped early: no read left running
            reading.add_done_callback(lambda task: task.cancelled() or task.exception())


def discard(db: Database[Any], bucket: str, file_id: Any) -> None:
    """Remove a file or the chunks of a partial upload (which has no files document yet)."""
    db[f"{bucket}.chunks"].delete_many({"files_id": file_id})
    if db[f"{bucket}.files"].find_one({"_id": file_id}, {"_id": 1}) is not None:
        db[f"{bucket}.files"].delete_one({"_id": file_id})


async def adiscard(db: AsyncDatabase[Any], bucket: str, file_id: Any) -> int:
    """Like :func:`discard`; returns how many chunks it removed."""
    removed = await db[f"{bucket}.chunks"].delete_many({"files_id": file_id})
    if await db[f"{bucket}.files"].find_one({"_id": file_id}, {"_id": 1}) is not None:
        await db[f"{bucket}.files"].delete_one({"_id": file_id})
    return removed.deleted_count


class _Chunker:
    """Cuts a byte stream into GridFS chunk documents, holding less than one chunk."""

    def __init__(self, file_id: Any, chunk_size: int = CHUNK_SIZE) -> None:
        self.file_id = file_id
        self.chunk_size = chunk_size
        self.length = 0
        self._n = 0
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.length += len(data)
        self._buffer += data
        docs = []
        while len(self._buffer) >= self.chunk_size:
            docs.append(self._doc(bytes(self._buffer[: self.chunk_size])))
            del self._buffer[: self.chunk_size]
        return docs

    def finish(self) -> list[dict[str, Any]]:
        docs = [self._doc(bytes(self._buffer))] if self._buffer else []
        self._buffer.clear()
        return docs

    def _doc(self, data: bytes) -> dict[str, Any]:
        doc = {"files_id": self.file_id, "n": self._n, "data": data}
        self._n += 1
        return doc

    def files_doc(self, filename: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return {
            "_id": self.file_id,
            "length": self.length,
            "chunkSize": self.chunk_size,
            "uploadDate": dt.datetime.now(dt.UTC),
            "filename": filename,
            "metadata": metadata,
        }


class AsyncFileWriter:
    """Writes one GridFS file from a stream of byte blocks; nothing is visible until close().

    With ``overlap``, a window's insert runs while the next window is received (at most
    one insert in flight: two windows in memory), so the store and the writer's source
    work at the same time instead of in turns; whoever drops such a writer on a failure
    calls ``settle()`` first, so that no insert of it lands after the removal of its
    chunks."""

    def __init__(
        self,
        db: AsyncDatabase[Any],
        bucket: str,
        file_id: Any,
        filename: str,
        metadata: dict[str, Any],
        *,
        overlap: bool = False,
    ) -> None:
        self.db, self.bucket, self.filename, self.metadata = db, bucket, filename, metadata
        self.overlap = overlap
        self._chunker = _Chunker(file_id)
        self._pending: list[dict[str, Any]] = []
        self._inserting: asyncio.Future[Any] | None = None

    @property
    def length(self) -> int:
        return self._chunker.length

    async def write(self, data: bytes) -> None:
        self._pending += self._chunker.feed(data)
        if len(self._pending) >= WINDOW:
            await self._flush()

    async def close(self) -> None:
        self._pending += self._chunker.finish()
        await self._flush()
        await self._inserted()
        await self.db[f"{self.bucket}.files"].insert_one(
            self._chunker.files_doc(self.filename, self.metadata)
        )

    async def settle(self) -> None:
        """Wait for the insert in flight, if any, ignoring how it ends."""
        with contextlib.suppress(Exception):
            await self._inserted()

    async def discard(self) -> None:
        self._pending.clear()
        await self.settle()
        await adiscard(self.db, self.bucket, self._chunker.file_id)

    async def _flush(self) -> None:
        await self._inserted()
        if self._pending:
            insert = self.db[f"{self.bucket}.chunks"].insert_many(self._pending, ordered=True)
            self._pending = []
            if self.overlap:
                self._inserting = asyncio.ensure_future(insert)
            else:
                await insert

    async def _inserted(self) -> None:
        """The insert in flight is done (its error raised here)."""
        if self._inserting is not None:
            inserting, self._inserting = self._inserting, None
            await inserting


def write_file(
    db: Database[Any],
    bucket: str,
    file_id: Any,
    filename: str,
    source: BinaryIO,
    metadata: dict[str, Any],
) -> int:
    """Copy ``source`` into a new GridFS file, a window at a time; returns its length."""
    chunker = _Chunker(file_id)
    chunks = db[f"{bucket}.chunks"]
    try:
        while block := source.read(CHUNK_SIZE * WINDOW):
            if docs := chunker.feed(block):
                chunks.insert_many(docs, ordered=True)
        if docs := chunker.finish():
            chunks.insert_many(docs, ordered=True)
        db[f"{bucket}.files"].insert_one(chunker.files_doc(filename, metadata))
    except BaseException:
        discard(db, bucket, file_id)
        raise
    return chunker.length
