"""The gateway's store on the MongoDB-wire stand-in: what a gateway killed mid-upload
leaves behind and the housekeeping that removes it, and the store's indexes."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from mp3mesh.core import gridfs_io, jobs
from mp3mesh.gateway.housekeeping import Housekeeping
from mp3mesh.gateway.store import UPLOADS, FileStore, UploadLost

LEASE = 0.5


def test_housekeeping_removes_only_uploads_whose_gateway_stopped_heartbeating(
    wire_mongo: MongoClient,
) -> None:
    """Three uploads whose marks say a lease of LEASE: one whose gateway died mid-upload,
    one whose gateway died just after recording its job, one still beating."""
    host, port = wire_mongo.address

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient(host, port)
        db = client[f"gateway_store_{ObjectId()}"]
        store = FileStore(db, upload_lease=LEASE)
        housekeeping = Housekeeping(store, video_queue="video", interval=LEASE / 4)
        dead, recorded, running = ObjectId(), ObjectId(), ObjectId()
        for job_id in (dead, recorded, running):
            await db[UPLOADS].insert_one(
                {"_id": job_id, "started": time.time(), "renewals": 0, "lease_seconds": LEASE}
            )
        for job_id in (dead, running):  # chunks written, never closed
            video = store.open_video_file(job_id, "u1", "v.mp4", "video/mp4")
            await video.write(os.urandom(gridfs_io.CHUNK_SIZE * gridfs_io.WINDOW + 1))
        # The gateway died right after recording this one: its upload is whole and kept.
        video = store.open_video_file(recorded, "u1", "v.mp4", "video/mp4")
        await video.write(b"whole video")
        await video.close()
        await db[jobs.COLLECTION].insert_one({"_id": recorded, "owner_id": "u1"})

        removed = []
        for _ in range(8):  # two leases, looked at every quarter of one
            await store._beat(running)
            removed.append(await housekeeping.sweep_orphan_uploads())
            await asyncio.sleep(LEASE / 4)
        assert sum(removed) == 1 and removed[:3] == [0, 0, 0], "not before a whole lease"
        chunks = db[f"{gridfs_io.VIDEOS}.chunks"]
        assert await chunks.find_one({"files_id": dead}) is None
        assert await chunks.find_one({"files_id": recorded}) is not None
        assert await chunks.find_one({"files_id": running}) is not None, "still being written"
        assert {m["_id"] for m in await db[UPLOADS].find().to_list()} == {running}
        with pytest.raises(UploadLost):  # had the dead one's gateway only stalled
            await store.insert_job({"_id": dead, "owner_id": "u1"})
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
