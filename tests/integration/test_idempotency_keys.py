"""Idempotency keys (mp3mesh/gateway/idempotency.py) on the MongoDB-wire server: what a
key sent again answers in each state of the upload it was first sent with."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient

from mp3mesh.core import jobs, options
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.housekeeping import Housekeeping
from mp3mesh.gateway.idempotency import KEY_SECONDS, KEYS, Keys, key_from, same_upload
from mp3mesh.gateway.store import UPLOADS, FileStore
from mp3mesh.gateway.upload import UploadRefused


def test_a_key_answers_its_job_waits_for_its_upload_or_is_taken_over(
    wire_mongo: MongoClient,
) -> None:
    host, port = wire_mongo.address

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient(host, port)
        db = client[f"keys_{ObjectId()}"]
        keys = Keys(db, UPLOADS)
        await keys.ensure_indexes()
        first, second = ObjectId(), ObjectId()
        assert await keys.reserve("u1", "k", first) is None
        # Its upload is being received: a second one under the key waits.
        await db[UPLOADS].insert_one({"_id": first, "started": 0, "renewals": 0})
        with pytest.raises(UploadRefused) as busy:
            await keys.reserve("u1", "k", second)
        assert busy.value.code == grpc.StatusCode.ABORTED
        # Recorded: the key answers its job, to its user only.
        job = jobs.new_job(job_id=first, owner_id="u1", owner_email="", filename="a.mp4",
                           size=3, sha256="abc")  # fmt: skip
        await db[jobs.COLLECTION].insert_one(job)
        answered = await keys.reserve("u1", "k", second)
        assert answered is not None and answered["_id"] == first
        assert same_upload(answered, "a.mp4", "abc") and not same_upload(answered, "a.mp4", "x")
        assert await keys.reserve("u2", "k", second) is None, "another user's key is theirs"
        # An upload that failed released its key: the next one takes it.
        await keys.release("u2", "k", second)
        assert await keys.reserve("u2", "k", ObjectId()) is None
        # A key past its 24 h is taken over, whatever it answered.
        old = jobs.now() - dt.timedelta(seconds=KEY_SECONDS + 1)
        await db[KEYS].update_one({"_id": "u1/k"}, {"$set": {"created": old}})
        third = ObjectId()
        assert await keys.reserve("u1", "k", third) is None
        assert (await db[KEYS].find_one({"_id": "u1/k"}))["job_id"] == third
        await client.drop_database(db.name)
        await client.close()

    asyncio.run(run())


def test_the_same_file_with_other_options_is_another_upload(wire_mongo: MongoClient) -> None:
    """same_upload compares the options the job keeps, read back from the store, with the
    options a body sent again resolves to."""
    wanted = options.resolve(files_pb2.ConversionOptions(preset="podcast-mono-64", title="Ep 1"))
    db = wire_mongo[f"keys_{ObjectId()}"]
    job = jobs.new_job(job_id=ObjectId(), owner_id="u1", owner_email="", filename="a.mp4",
                       size=3, sha256="abc", options=wanted)  # fmt: skip
    db[jobs.COLLECTION].insert_one(job)
    kept = db[jobs.COLLECTION].find_one({"_id": job["_id"]})
    assert kept is not None
    again = options.resolve(files_pb2.ConversionOptions(preset="podcast-mono-64", title="Ep 1"))
    assert same_upload(kept, "a.mp4", "abc", again)
    for other in (
        files_pb2.ConversionOptions(),
        options.resolve(files_pb2.ConversionOptions(preset="podcast-mono-64")),
        options.resolve(files_pb2.ConversionOptions(preset="podcast-mono-64", title="Ep 1",
                                                    bitrate_kbps=96)),
        options.resolve(files_pb2.ConversionOptions(preset="music-320", title="Ep 1")),
    ):  # fmt: skip
        assert not same_upload(kept, "a.mp4", "abc", other), other
    assert not same_upload(kept, "a.mp4", "abd", again)
    plain = jobs.new_job(job_id=ObjectId(), owner_id="u1", owner_email="", filename="a.mp4",
                         size=3, sha256="abc")  # fmt: skip
    db[jobs.COLLECTION].insert_one(plain)
    kept_plain = db[jobs.COLLECTION].find_one({"_id": plain["_id"]})
    assert kept_plain is not None and same_upload(kept_plain, "a.mp4", "abc")
    assert not same_upload(kept_plain, "a.mp4", "abc", wanted)
    wire_mongo.drop_database(db.name)


def test_the_key_comes_from_the_metadata_within_its_bound() -> None:
    assert key_from((("authorization", "Bearer x"), ("idempotency-key", " k1 "))) == "k1"
    assert key_from(()) == ""
    with pytest.raises(UploadRefused) as long:
        key_from((("idempotency-key", "k" * 256),))
    assert long.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Idempotency-Key" in long.value.message


def test_housekeeping_removes_old_keys_and_tombstones_the_stand_in_keeps(
    wire_mongo: MongoClient,
) -> None:
    """What the TTL indexes remove on MongoDB, housekeeping removes on the stand-in."""
    host, port = wire_mongo.address

    async def run() -> None:
        client: AsyncMongoClient = AsyncMongoClient(host, port)
        db = client[f"keys_{ObjectId()}"]
        store = FileStore(db)
        housekeeping = Housekeeping(store, video_queue="video", interval=1)
        old = jobs.now() - dt.timedelta(seconds=jobs.TOMBSTONE_SECONDS + 1)
        await db[KEYS].insert_many([{"_id": "u/old", "created": old},
                                    {"_id": "u/new", "created": jobs.now()}])  # fmt: skip
        await db[jobs.TOMBSTONES].insert_many([{"_id": 1, "deleted": old},
                                               {"_id": 2, "deleted": jobs.now()}])  # fmt: skip
        await housekeeping.expire_finished_jobs()
        assert [k["_id"] async for k in db[KEYS].find()] == ["u/new"]
        assert [t["_id"] async for t in db[jobs.TOMBSTONES].find()] == [2]
        await client.drop_database(db.name)
        await client.close()

    asyncio.run(run())
