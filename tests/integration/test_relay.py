"""The gateway's outbox relay and housekeeping on the MongoDB-wire stand-in and the real
RabbitMQ: a job whose converter stopped renewing its lease goes back to the queue and is
announced again, and a pending announcement (VideoUploaded, or a converter's JobFinished)
is published with confirms and then cleared."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pika
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.collection import AsyncCollection

from devstack import AMQP_URL, drop_queues
from mp3mesh.core import jobs
from mp3mesh.core.amqp.consumer import decode
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.housekeeping import Housekeeping
from mp3mesh.gateway.relay import OutboxRelay
from mp3mesh.gateway.store import FileStore

LEASE = 0.5


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = (f"video.relay-{tag}", f"mp3.relay-{tag}")
    yield names
    drop_queues(*names)


@pytest.fixture
def publisher(queues: tuple[str, str]) -> Iterator[ThreadedPublisher]:
    publisher = ThreadedPublisher(AMQP_URL, list(queues))
    publisher.start()
    yield publisher
    publisher.close()


def _processing_job(holder: str) -> dict:
    job = jobs.new_job(
        job_id=ObjectId(), owner_id="u1", owner_email="u1@example.com",
        filename="a.mp4", size=1, sha256="",
    )  # fmt: skip
    job.update(status=jobs.PROCESSING, attempts=1, claim=holder, renewals=1, lease_seconds=LEASE)
    return job


def _received(queue: str, message_type: type) -> list:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel, messages = conn.channel(), []
    while (got := channel.basic_get(queue, auto_ack=True))[0] is not None:
        messages.append(decode(got[2], got[1], message_type))
    conn.close()
    return messages


async def _on_wire(wire_mongo: MongoClient, test) -> dict:  # type: ignore[no-untyped-def]
    host, port = wire_mongo.address
    client: AsyncMongoClient = AsyncMongoClient(host, port)
    name = f"relay_{ObjectId()}"
    try:
        return await test(client[name][jobs.COLLECTION])
    finally:
        await client.drop_database(name)
        await client.close()


def test_a_job_whose_converter_stopped_renewing_is_queued_and_announced_again(
    wire_mongo: MongoClient, queues: tuple[str, str], publisher: ThreadedPublisher
) -> None:
    video_queue, mp3_queue = queues

    async def test(collection: AsyncCollection) -> dict:
        housekeeping = Housekeeping(
            FileStore(collection.database), video_queue=video_queue, interval=LEASE / 4
        )
        relay = OutboxRelay(
            collection, publisher, video_queue=video_queue, mp3_queue=mp3_queue,
            publish_timeout=5, interval=1,
        )  # fmt: skip
        silent, renewing = _processing_job("silent"), _processing_job("renewing")
        await collection.insert_many([silent, renewing])
        swept = []
        for _ in range(8):  # two leases, watched every quarter of one
            await collection.update_one({"_id": renewing["_id"]}, {"$inc": {"renewals": 1}})
            swept.append(await housekeeping.sweep_expired_leases())
            await asyncio.sleep(LEASE / 4)
        assert sum(swept) == 1 and swept[:3] == [0, 0, 0], "not before a whole lease"
        assert (await collection.find_one({"_id": renewing["_id"]}))["status"] == jobs.PROCESSING
        assert await relay.relay_pending() == 1
        return await collection.find_one({"_id": silent["_id"]})

    record = asyncio.run(_on_wire(wire_mongo, test))
    assert record["status"] == jobs.QUEUED and record["attempts"] == 1
    assert record["claim"] is None, "the silent holder is fenced out"
    assert "announce_at" not in record, "cleared once the broker confirmed it"
    [announced] = _received(video_queue, events_pb2.VideoUploaded)
    assert announced.job_id == str(record["_id"])


def test_a_finished_jobs_result_left_pending_by_its_converter_is_published(
    wire_mongo: MongoClient, queues: tuple[str, str], publisher: ThreadedPublisher
) -> None:
    """The converter's own publish was not confirmed (the broker cut off): the relay
    publishes the JobFinished recorded with the final status."""
    video_queue, mp3_queue = queues

    async def test(collection: AsyncCollection) -> dict:
        relay = OutboxRelay(
            collection, publisher, video_queue=video_queue, mp3_queue=mp3_queue,
            publish_timeout=0.5, interval=1,
        )  # fmt: skip
        job = _processing_job("holder")
        await collection.insert_one(job)
        change = jobs.succeed(
            job["_id"], "holder", mp3_id=ObjectId(), duration=1.0, size=10, expires_at=9e9,
            announce=jobs.pending_announcement(mp3_queue, time.time(), {}),
        )  # fmt: skip
        await collection.update_one(change.filter, change.update)
        assert await relay.relay_pending() == 0, "the converter's own publish gets its chance"
        await asyncio.sleep(0.6)
        assert await relay.relay_pending() == 1
        return await collection.find_one({"_id": job["_id"]})

    record = asyncio.run(_on_wire(wire_mongo, test))
    assert "announce_at" not in record
    [finished] = _received(mp3_queue, events_pb2.JobFinished)
    assert finished == jobs.job_finished(record)
    assert _received(video_queue, events_pb2.VideoUploaded) == []


def test_a_cancel_whose_announcement_was_not_confirmed_is_published(
    wire_mongo: MongoClient, queues: tuple[str, str], publisher: ThreadedPublisher
) -> None:
    """The gateway recorded the cancel with its JobFinished pending and died before the
    broker confirmed it: the relay publishes it, CANCELLED, and no VideoUploaded."""
    video_queue, mp3_queue = queues

    async def test(collection: AsyncCollection) -> dict:
        relay = OutboxRelay(
            collection, publisher, video_queue=video_queue, mp3_queue=mp3_queue,
            publish_timeout=5, interval=1,
        )  # fmt: skip
        job = jobs.new_job(job_id=ObjectId(), owner_id="u1", owner_email="u1@example.com",
                           filename="a.mp4", size=1, sha256="")  # fmt: skip
        relay.mark_pending(job)
        await collection.insert_one(job)
        pending: dict = {}
        relay.mark_pending(pending, finished=True)
        pending["announce_at"] -= 60  # tried a minute ago, by a gateway now gone
        change = jobs.cancel(job, expires_at=9e9, announce=pending)
        assert (await collection.update_one(change.filter, change.update)).matched_count == 1
        assert relay.finished_pending(await collection.find_one({"_id": job["_id"]}))
        assert await relay.relay_pending() == 1
        return await collection.find_one({"_id": job["_id"]})

    record = asyncio.run(_on_wire(wire_mongo, test))
    assert record["status"] == jobs.CANCELLED and "announce_at" not in record
    [finished] = _received(mp3_queue, events_pb2.JobFinished)
    assert finished.status == files_pb2.JOB_STATUS_CANCELLED
    assert finished == jobs.job_finished(record)
    assert _received(video_queue, events_pb2.VideoUploaded) == []


def test_a_job_whose_announcement_was_lost_is_announced_again(
    wire_mongo: MongoClient, queues: tuple[str, str], publisher: ThreadedPublisher
) -> None:
    """QUEUED, its announcement confirmed, its message then lost (a purged queue, a give-up
    that failed): housekeeping announces it again after its patience, once."""
    video_queue, mp3_queue = queues

    async def test(collection: AsyncCollection) -> list[int]:
        housekeeping = Housekeeping(
            FileStore(collection.database), video_queue=video_queue, interval=LEASE / 4,
            queued_patience=LEASE,
        )  # fmt: skip
        relay = OutboxRelay(
            collection, publisher, video_queue=video_queue, mp3_queue=mp3_queue,
            publish_timeout=5, interval=1,
        )  # fmt: skip
        job = _processing_job("nobody")
        job.update(status=jobs.QUEUED, claim=None)
        await collection.insert_one(job)
        announced = []
        for _ in range(12):  # three patiences, looked at every quarter of one
            announced.append(await housekeeping.announce_stalled_jobs())
            await relay.relay_pending()
            await asyncio.sleep(LEASE / 4)
        return announced

    announced = asyncio.run(_on_wire(wire_mongo, test))
    assert announced[:3] == [0, 0, 0], "not before its patience"
    assert sum(announced) == 2, "again a whole patience later while nobody takes it"
    assert len(_received(video_queue, events_pb2.VideoUploaded)) == 2
