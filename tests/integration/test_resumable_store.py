"""The gateway's resumable uploads (mp3mesh/gateway/resumable.py) on the MongoDB-wire stand-in:
writes at the committed offset, a cut write keeping what it received, checksums all or
nothing, sealing into an ordinary GridFS file, expiry leaving no chunks."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient, MongoClient

from mp3mesh.core import gridfs_io
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.resumable import PART_BYTES, PARTS, ResumableUploads
from mp3mesh.gateway.upload import UploadRefused


class ClientGone(Exception):
    pass


async def never(record: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("an incomplete upload was completed")


async def _blocks(data: bytes, size: int, cut_after: int | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if cut_after is not None and start >= cut_after:
            raise ClientGone
        yield data[start : start + size]


async def _parts_left(uploads: ResumableUploads, part_ids: list[object]) -> int:
    """Part files left, and chunks left of the parts named (the stand-in finds GridFS
    chunks by their file only)."""
    files = len(await uploads.db[f"{PARTS}.files"].find({}).to_list())
    chunks = uploads.db[f"{PARTS}.chunks"]
    return files + sum([await chunks.find_one({"files_id": i}) is not None for i in part_ids])


def _uploads(wire_mongo: MongoClient, db_name: str, clock: list[float]) -> ResumableUploads:
    client: AsyncMongoClient = AsyncMongoClient("mongodb://{}:{}".format(*wire_mongo.address))
    return ResumableUploads(
        client[db_name], max_bytes=64 * 1024 * 1024, ttl=60, clock=lambda: clock[0]
    )


def _start(total: int) -> files_pb2.StartResumableUploadRequest:
    return files_pb2.StartResumableUploadRequest(
        metadata=files_pb2.UploadMetadata(filename="v.mp4", content_type="video/mp4"),
        total_size=total,
        extra_metadata={"preset": "voice"},
    )


def test_cut_write_keeps_what_came_and_the_upload_seals(wire_mongo: MongoClient) -> None:
    data = os.urandom(PART_BYTES * 2 + 123_457)  # three parts, the last partly filled

    async def run() -> None:
        uploads = _uploads(wire_mongo, "resumable_a", [1000.0])
        record = await uploads.start("u1", "u1@example.com", _start(len(data)))
        upload_id = record["_id"]
        # Cut after 5 MB of 100 kB blocks: more than one part, the rest mid-part.
        with pytest.raises(ClientGone):
            await uploads.write("u1", upload_id, 0, b"", _blocks(data, 100_000, 5_000_000), never)
        committed = (await uploads.get("u1", upload_id))["committed"]
        assert committed == 5_000_000
        with pytest.raises(UploadRefused) as wrong:
            await uploads.write("u1", upload_id, 0, b"", _blocks(data, 100_000), never)
        assert wrong.value.code == grpc.StatusCode.ABORTED
        sealed = []

        async def complete(full: dict[str, Any]) -> dict[str, Any]:
            """What the servicer does, less the job: seal, mark complete."""
            sealed.append(await uploads.seal(full))
            return await uploads.mark_complete(full["_id"])

        record = await uploads.write(
            "u1", upload_id, committed, b"", _blocks(data[committed:], 77_777), complete
        )
        assert record["committed"] == len(data) and record["completed"]
        part_ids = [part["id"] for part in record["parts"]]
        assert len(part_ids) == 3  # the cut write: one full, one partly; the rest: one
        assert [video.sha256 for video in sealed] == [hashlib.sha256(data).hexdigest()]
        # Asked again (a query, a repeated last PATCH): complete already, sealed once.
        assert (await uploads.complete("u1", upload_id, complete))["completed"]
        assert len(sealed) == 1
        stored = b"".join(
            [c async for c in gridfs_io.aiter_file(uploads.db, gridfs_io.VIDEOS, upload_id)]
        )
        assert stored == data
        assert await _parts_left(uploads, part_ids) == 0
        assert (await uploads.seal(record)).sha256 == sealed[0].sha256  # idempotent

    asyncio.run(run())


def test_checksum_mismatch_keeps_nothing_and_expiry_removes_all(
    wire_mongo: MongoClient,
) -> None:
    data = os.urandom(PART_BYTES + 1000)
    clock = [1000.0]

    async def run() -> None:
        uploads = _uploads(wire_mongo, "resumable_b", clock)
        record = await uploads.start("u1", "u1@example.com", _start(len(data) * 2))
        upload_id = record["_id"]
        bad = hashlib.sha1(b"other", usedforsecurity=False).digest()
        with pytest.raises(UploadRefused) as mismatch:
            await uploads.write("u1", upload_id, 0, bad, _blocks(data, 65_536), never)
        assert mismatch.value.code == grpc.StatusCode.DATA_LOSS
        assert (await uploads.get("u1", upload_id))["committed"] == 0
        assert await _parts_left(uploads, []) == 0
        good = hashlib.sha1(data, usedforsecurity=False).digest()
        record = await uploads.write("u1", upload_id, 0, good, _blocks(data, 65_536), never)
        assert record["committed"] == len(data)
        part_ids = [part["id"] for part in record["parts"]]
        assert await _parts_left(uploads, part_ids) == 2 * 2  # files and chunks of two
        with pytest.raises(UploadRefused) as other_user:
            await uploads.get("u2", upload_id)
        assert other_user.value.code == grpc.StatusCode.NOT_FOUND

        clock[0] += 61
        with pytest.raises(UploadRefused):
            await uploads.get("u1", upload_id)
        assert await uploads.expire(uploads.db["jobs"]) == 1
        assert await uploads.records.find_one({"_id": upload_id}) is None
        assert await _parts_left(uploads, part_ids) == 0

    asyncio.run(run())


def test_options_are_checked_at_the_start_and_reach_the_sealed_video(
    wire_mongo: MongoClient,
) -> None:
    """The options are resolved over their preset when the upload starts and are what
    seal hands to the job; one out of range is refused then, with no record left."""
    data = b"v" * 1000

    async def run() -> None:
        uploads = _uploads(wire_mongo, "resumable_options", [1000.0])
        request = _start(len(data))
        request.metadata.options.preset = "podcast-mono-64"
        request.metadata.options.bitrate_kbps = 96
        request.metadata.options.title = "Talk"
        record = await uploads.start("u1", "u1@example.com", request)
        assert record["options"] == {
            "preset": "podcast-mono-64",
            "bitrate_kbps": 96,
            "channels": "mono",
            "sample_rate_hz": 44100,
            "loudness_lufs": -16.0,
            "title": "Talk",
        }
        assert (await uploads.get("u1", record["_id"]))["options"] == record["options"]
        sealed = []

        async def complete(full: dict[str, Any]) -> dict[str, Any]:
            sealed.append(await uploads.seal(full))
            return await uploads.mark_complete(full["_id"])

        await uploads.write("u1", record["_id"], 0, b"", _blocks(data, 400), complete)
        options = sealed[0].options
        assert (options.bitrate_kbps, options.channels, options.title) == (96, "mono", "Talk")
        assert options.loudness_lufs == -16.0

        before = await uploads.records.count_documents({})
        bad = _start(len(data))
        bad.metadata.options.bitrate_kbps = 100
        with pytest.raises(UploadRefused) as refused:
            await uploads.start("u1", "u1@example.com", bad)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.message.startswith("bitrate_kbps: 100 is not a LAME constant")
        assert await uploads.records.count_documents({}) == before

    asyncio.run(run())
