"""The gateway's outbox relay on the stack's MongoDB stand-in and the real RabbitMQ: a job
whose converter died (its lease ran out) goes back to the queue, and a pending
announcement is published with confirms and then cleared."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pika
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from gateway.relay import OutboxRelay
from meshcore import jobs
from meshcore.amqp import ThreadedPublisher, decode
from mp3mesh.events.v1 import events_pb2
from tests.helpers import AMQP_URL, Stack, drop_queues


@pytest.fixture
def video_queue() -> Iterator[str]:
    name = f"video.relay-{uuid.uuid4().hex[:8]}"
    yield name
    drop_queues(name)


def test_a_job_whose_converter_died_is_queued_and_announced_again(
    stack: Stack, video_queue: str
) -> None:
    publisher = ThreadedPublisher(AMQP_URL, [video_queue])
    publisher.start()

    async def run() -> dict:
        client: AsyncMongoClient = AsyncMongoClient(stack.env["MONGO_URL"])
        collection = client[f"relay_{ObjectId()}"][jobs.COLLECTION]
        relay = OutboxRelay(
            collection, publisher, video_queue=video_queue, publish_timeout=5, interval=1
        )
        job = jobs.new_job(
            job_id=ObjectId(), owner_id="u1", owner_email="u1@example.com",
            filename="a.mp4", size=1, sha256="",
        )  # fmt: skip
        job.update(status=jobs.PROCESSING, attempts=1, locked_until=time.time() - 1)
        await collection.insert_one(job)
        assert await relay.sweep_expired_leases() == 1
        assert await relay.relay_pending() == 1
        record = await collection.find_one({"_id": job["_id"]})
        await client.drop_database(collection.database.name)
        await client.close()
        return record

    try:
        record = asyncio.run(run())
    finally:
        publisher.close()
    assert record["status"] == jobs.QUEUED and record["attempts"] == 1
    assert "announce_at" not in record, "cleared once the broker confirmed it"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    method, props, body = conn.channel().basic_get(video_queue, auto_ack=True)
    conn.close()
    assert method is not None
    assert decode(body, props, events_pb2.VideoUploaded).job_id == str(record["_id"])
