"""Ranged GridFS reads (Download's read_offset/read_limit) on the MongoDB-wire stand-in:
the bytes asked for, exactly, from the chunk holding the first one."""

from __future__ import annotations

import asyncio
import io
import os

from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from mp3mesh.core import gridfs_io

CS, W = gridfs_io.CHUNK_SIZE, gridfs_io.WINDOW


def test_ranged_reads_give_exactly_the_bytes_asked(wire_mongo: MongoClient) -> None:
    data = os.urandom(CS * (W + 3) + 17)  # two windows, ragged end
    file_id = ObjectId()
    gridfs_io.write_file(wire_mongo["gridfs_ranges"], "t", file_id, "f.bin", io.BytesIO(data), {})
    spans = [
        (0, None), (0, 1), (1, 2), (CS - 1, CS + 1), (CS, 2 * CS), (5, len(data)),
        (CS * W - 3, CS * W + 3), (len(data) - 1, None), (len(data), None), (10, 10),
        (CS * 2 + 7, len(data) + 1000),
    ]  # fmt: skip

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient("mongodb://{}:{}".format(*wire_mongo.address))
        db = client["gridfs_ranges"]
        doc = await db["t.files"].find_one({"_id": file_id})
        for start, stop in spans:
            got = [
                block
                async for window in gridfs_io.aiter_windows(db, "t", file_id, doc, start, stop)
                for block in window
            ]
            assert b"".join(got) == data[start:stop], (start, stop)
        # Only the chunks holding the range are read: the first window starts at its chunk.
        windows = list(gridfs_io._windows("t", file_id, doc, CS * 5 + 1, CS * 5 + 2))
        assert [w.query["n"] for w in windows] == [{"$gte": 5, "$lt": 6}]
        await client.close()

    asyncio.run(run())
