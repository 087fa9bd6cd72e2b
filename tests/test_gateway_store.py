"""The gateway's store on the stack's MongoDB stand-in: what a gateway killed mid-upload
leaves behind, and the startup sweep that removes it."""

from __future__ import annotations

import asyncio
import os
import time

from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from gateway.store import UPLOADS, FileStore
from meshcore import gridfs_io, jobs
from tests.helpers import Stack

HOUR = 3600.0


def test_startup_sweep_removes_uploads_their_gateway_never_finished(stack: Stack) -> None:
    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient(stack.env["MONGO_URL"])
        db = client[f"gateway_store_{ObjectId()}"]
        store = FileStore(db)
        dead, recorded, running = ObjectId(), ObjectId(), ObjectId()
        for job_id, started in ((dead, 2 * HOUR), (recorded, 2 * HOUR), (running, 0)):
            await db[UPLOADS].insert_one({"_id": job_id, "started": time.time() - started})
        for job_id in (dead, running):  # chunks written, never closed
            video = store.open_video_file(job_id, "u1", "v.mp4", "video/mp4")
            await video.write(os.urandom(gridfs_io.CHUNK_SIZE * gridfs_io.WINDOW + 1))
        # The gateway died right after recording this one: its upload is whole and kept.
        video = store.open_video_file(recorded, "u1", "v.mp4", "video/mp4")
        await video.write(b"whole video")
        await video.close()
        await db[jobs.COLLECTION].insert_one({"_id": recorded, "owner_id": "u1"})

        assert await store.sweep_unfinished(older_than=HOUR) == 1
        chunks = db[f"{gridfs_io.VIDEOS}.chunks"]
        assert await chunks.find_one({"files_id": dead}) is None
        assert await chunks.find_one({"files_id": recorded}) is not None
        assert await chunks.find_one({"files_id": running}) is not None, "still being written"
        assert {m["_id"] for m in await db[UPLOADS].find().to_list()} == {running}
        await client.drop_database(db.name)
        await client.close()

    asyncio.run(run())


def test_every_lookup_of_the_relay_and_housekeeping_has_an_index(wire_mongo: MongoClient) -> None:
    host, port = wire_mongo.address
    name = f"gateway_store_{ObjectId()}"

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient(host, port)
        await FileStore(client[name]).ensure_indexes()
        await client.close()

    asyncio.run(run())
    try:
        indexed = {
            collection: {key for index in db_indexes.values() for key, _ in index["key"]}
            for collection, db_indexes in (
                (c, wire_mongo[name][c].index_information()) for c in (jobs.COLLECTION, UPLOADS)
            )
        }
    finally:
        wire_mongo.drop_database(name)
    assert set(jobs.INDEXED) <= indexed[jobs.COLLECTION]
    assert "started" in indexed[UPLOADS]
    # Not checked: mp3s.files's index on metadata.job_id. The nx-27017 stand-in accepts it
    # but lists only its built-in indexes of GridFS's own collections; MongoDB lists it.
