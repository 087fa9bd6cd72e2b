"""Windowed GridFS reads and writes on the MongoDB-wire stand-in (nx-27017)."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from mp3mesh.core import gridfs_io


def test_sync_write_and_read_across_windows(wire_mongo: MongoClient) -> None:
    db = wire_mongo["gridfs_io_test"]
    data = os.urandom(
        gridfs_io.CHUNK_SIZE * (gridfs_io.WINDOW * 2 + 3) + 17
    )  # 3 windows, ragged end
    file_id = ObjectId()
    assert gridfs_io.write_file(db, "t", file_id, "f.bin", io.BytesIO(data), {"k": "v"}) == len(
        data
    )
    assert b"".join(gridfs_io.iter_file(db, "t", file_id)) == data
    doc = db["t.files"].find_one({"_id": file_id})
    assert doc["length"] == len(data) and doc["metadata"] == {"k": "v"}

    # The torn-write case (CorruptFile) is not tested here: the stand-in emulates GridFS
    # collections and ignores a deleted single chunk or an edited files document.
    gridfs_io.discard(db, "t", file_id)
    with pytest.raises(gridfs_io.MissingFile):
        next(gridfs_io.iter_file(db, "t", file_id))


@pytest.mark.parametrize("overlap", [False, True], ids=["in turns", "overlapped"])
def test_async_writer_round_trip_and_discard(wire_mongo: MongoClient, overlap: bool) -> None:
    """Whole files in order, and nothing left of a discarded one, whether a window's
    insert runs while the next window comes in (the gateway's uploads) or not."""

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient("mongodb://{}:{}".format(*wire_mongo.address))
        db = client["gridfs_io_test"]
        blocks = [os.urandom(100_000) for _ in range(90)]  # 9 MB in odd-sized blocks
        kept, dropped = ObjectId(), ObjectId()
        writer = gridfs_io.AsyncFileWriter(db, "t", kept, "a.bin", {}, overlap=overlap)
        for b in blocks:
            await writer.write(b)
        await writer.close()
        assert b"".join([c async for c in gridfs_io.aiter_file(db, "t", kept)]) == b"".join(blocks)

        partial = gridfs_io.AsyncFileWriter(db, "t", dropped, "b.bin", {}, overlap=overlap)
        for b in blocks:
            await partial.write(b)
        await partial.discard()
        assert await db["t.files"].find_one({"_id": dropped}) is None
        assert await db["t.chunks"].find_one({"files_id": dropped}, {"n": 1}) is None
        await client.close()

    asyncio.run(run())


def record(tasks: list[asyncio.Future[object]], task: asyncio.Task[object]) -> asyncio.Task[object]:
    tasks.append(task)
    return task


def test_async_windows_read_ahead_and_stop_cleanly(wire_mongo: MongoClient) -> None:
    """Windows come whole and in order while the next one is read ahead; a reader that
    stops early leaves no read running."""

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient("mongodb://{}:{}".format(*wire_mongo.address))
        db = client["gridfs_io_test"]
        data = os.urandom(gridfs_io.CHUNK_SIZE * (gridfs_io.WINDOW * 3 + 1))
        file_id = ObjectId()
        writer = gridfs_io.AsyncFileWriter(db, "t", file_id, "w.bin", {})
        await writer.write(data)
        await writer.close()
        windows = [w async for w in gridfs_io.aiter_windows(db, "t", file_id)]
        assert [len(w) for w in windows] == [gridfs_io.WINDOW] * 3 + [1]
        assert b"".join(b"".join(w) for w in windows) == data

        # Every task the reader starts, finished or not: a read-ahead that has already
        # ended by the time the first window arrives still counts.
        started: list[asyncio.Future[object]] = []
        loop = asyncio.get_running_loop()
        loop.set_task_factory(
            lambda loop, coro, **kw: record(started, asyncio.Task(coro, loop=loop, **kw))
        )
        reader = gridfs_io.aiter_windows(db, "t", file_id)
        assert b"".join(await anext(reader)) == data[: gridfs_io.CHUNK_SIZE * gridfs_io.WINDOW]
        reads = [t for t in started if "aiter_windows" in t.get_coro().__qualname__]  # type: ignore[attr-defined]
        assert len(reads) == 2, "the first window and the read-ahead of the next"
        await reader.aclose()  # as a client gone mid-download
        _, running = await asyncio.wait(started, timeout=30)
        assert not running
        await client.close()

    asyncio.run(run())
