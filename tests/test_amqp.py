"""The AMQP helpers against the real RabbitMQ: what gets acked, requeued, dead-lettered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from meshcore.amqp import Consumer, Outcome, declare_queues, decode, publish
from mp3mesh.events.v1 import events_pb2
from tests.helpers import AMQP_URL, drop_queues


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    names = (f"in.test-{uuid.uuid4().hex[:8]}", f"out.test-{uuid.uuid4().hex[:8]}")
    yield names
    drop_queues(*names)


def _depth(channel, queue: str) -> int:  # type: ignore[no-untyped-def]
    return channel.queue_declare(queue, passive=True).method.message_count


def _run(consumer: Consumer, until) -> None:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=consumer.run)
    thread.start()
    deadline = time.monotonic() + 30
    while not until() and time.monotonic() < deadline:
        time.sleep(0.1)
    consumer.stop()
    thread.join(30)


def test_messages_are_persistent_typed_protobuf(queues: tuple[str, str]) -> None:
    inq, _ = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.confirm_delivery()
    declare_queues(ch, [inq])
    publish(ch, inq, events_pb2.VideoUploaded(job_id="j1", filename="a.mp4"), "j1")
    _, props, body = ch.basic_get(inq, auto_ack=True)
    assert props.delivery_mode == 2 and props.message_id == "j1"
    assert props.content_type == "application/x-protobuf"
    assert props.type == "mp3mesh.events.v1.VideoUploaded"
    assert decode(body, props, events_pb2.VideoUploaded).filename == "a.mp4"
    conn.close()


def test_handled_message_publishes_then_acks(queues: tuple[str, str]) -> None:
    inq, outq = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    declare_queues(ch, [inq, outq])
    publish(ch, inq, events_pb2.VideoUploaded(job_id="j2"), "j2")

    def handler(body: bytes, props: pika.BasicProperties) -> Outcome:
        event = decode(body, props, events_pb2.VideoUploaded)
        time.sleep(1.5)  # the connection keeps serving while the handler works
        return Outcome(publish=[(outq, events_pb2.JobFinished(job_id=event.job_id), event.job_id)])

    _run(Consumer(AMQP_URL, inq, handler, [inq, outq]), lambda: _depth(ch, outq) == 1)
    assert _depth(ch, inq) == 0 and _depth(ch, outq) == 1
    conn.close()


def test_poison_messages_end_in_the_dead_letter_queue(queues: tuple[str, str]) -> None:
    inq, _ = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    declare_queues(ch, [inq])
    ch.basic_publish(
        "",
        inq,
        b"\xff\xfe not protobuf",
        pika.BasicProperties(type="mp3mesh.events.v1.VideoUploaded"),
    )
    ch.basic_publish("", inq, b"", pika.BasicProperties(type="something.Else"))
    publish(ch, inq, events_pb2.VideoUploaded(job_id="boom"), "boom")
    calls: list[str] = []

    def handler(body: bytes, props: pika.BasicProperties) -> Outcome:
        event = decode(body, props, events_pb2.VideoUploaded)
        calls.append(event.job_id)
        raise RuntimeError("always fails")

    _run(Consumer(AMQP_URL, inq, handler, [inq]), lambda: _depth(ch, f"{inq}.dead") == 3)
    assert calls == ["boom", "boom"], "a failing message is tried twice, then dead-lettered"
    assert _depth(ch, inq) == 0 and _depth(ch, f"{inq}.dead") == 3
    conn.close()
