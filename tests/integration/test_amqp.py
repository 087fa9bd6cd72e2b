"""The AMQP helpers against the real RabbitMQ: what gets acked, requeued, dead-lettered."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from devstack import AMQP_URL, drop_queues
from mp3mesh.core.amqp.consumer import (
    RETRIES_HEADER,
    Consumer,
    Outcome,
    decode,
    retries_of,
    run_side_by_side,
)
from mp3mesh.core.amqp.publisher import ThreadedPublisher, publish
from mp3mesh.core.amqp.topology import declare_queues
from mp3mesh.core.replay import replay
from mp3mesh.events.v1 import events_pb2

DELAYS = (0.3, 0.6)


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    names = (f"in.test-{uuid.uuid4().hex[:8]}", f"out.test-{uuid.uuid4().hex[:8]}")
    yield names
    drop_queues(*names, retry_delays=DELAYS)


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
    calls: list[tuple[str, int]] = []
    given_up: list[str] = []

    def handler(body: bytes, props: pika.BasicProperties) -> Outcome:
        event = decode(body, props, events_pb2.VideoUploaded)
        calls.append((event.job_id, retries_of(props)))
        raise RuntimeError("always fails")

    def give_up(body: bytes, props: pika.BasicProperties, reason: str) -> Outcome:
        given_up.append(reason)
        return Outcome()

    consumer = Consumer(AMQP_URL, inq, handler, [inq], retry_delays=DELAYS, give_up=give_up)
    _run(consumer, lambda: _depth(ch, f"{inq}.dead") == 3)
    assert calls == [("boom", 0), ("boom", 1), ("boom", 2)], "tried, then retried twice"
    assert given_up == ["RuntimeError: always fails"], "the job is ended before dead-lettering"
    assert _depth(ch, inq) == 0 and _depth(ch, f"{inq}.dead") == 3
    conn.close()


def test_retries_wait_in_the_retry_queues_then_succeed(queues: tuple[str, str]) -> None:
    inq, _ = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    declare_queues(ch, [inq])
    publish(ch, inq, events_pb2.VideoUploaded(job_id="flaky"), "flaky")
    seen: list[float] = []

    def handler(body: bytes, props: pika.BasicProperties) -> Outcome:
        seen.append(time.monotonic())
        if len(seen) < 3:
            raise ConnectionError("store unavailable")
        return Outcome()

    _run(Consumer(AMQP_URL, inq, handler, [inq], retry_delays=DELAYS), lambda: len(seen) == 3)
    waits = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert all(wait >= delay for wait, delay in zip(waits, DELAYS, strict=True)), waits
    assert _depth(ch, inq) == 0 and _depth(ch, f"{inq}.dead") == 0
    conn.close()


def test_replay_moves_dead_letters_back_with_a_fresh_retry_count(queues: tuple[str, str]) -> None:
    inq, _ = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.confirm_delivery()
    declare_queues(ch, [inq])
    for n in range(3):
        message = events_pb2.VideoUploaded(job_id=f"dead-{n}")
        ch.basic_publish(
            "",
            f"{inq}.dead",
            message.SerializeToString(),
            pika.BasicProperties(type=message.DESCRIPTOR.full_name, headers={RETRIES_HEADER: 4}),
        )
    assert replay(AMQP_URL, inq) == 3
    assert _depth(ch, f"{inq}.dead") == 0
    replayed = [ch.basic_get(inq, auto_ack=True) for _ in range(3)]
    assert [
        decode(body, props, events_pb2.VideoUploaded).job_id for _, props, body in replayed
    ] == [
        "dead-0",
        "dead-1",
        "dead-2",
    ]
    assert all(retries_of(props) == 0 for _, props, _ in replayed)
    conn.close()


def test_consumers_side_by_side_handle_messages_at_the_same_time(
    queues: tuple[str, str],
) -> None:
    """Each consumer has its own connection and prefetch 1: two of them hold one message
    each at once, and a message waits for whichever is free."""
    inq, _ = queues
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    declare_queues(ch, [inq])
    for n in range(4):
        publish(ch, inq, events_pb2.VideoUploaded(job_id=f"j{n}"), f"j{n}")
    both_busy = threading.Barrier(2, timeout=30)
    handled: list[str] = []

    def handler(body: bytes, props: pika.BasicProperties) -> Outcome:
        both_busy.wait()  # breaks (and the test fails) unless two run at once
        handled.append(decode(body, props, events_pb2.VideoUploaded).job_id)
        return Outcome()

    consumers = [Consumer(AMQP_URL, inq, handler, [inq]) for _ in range(2)]
    runner = threading.Thread(target=run_side_by_side, args=(consumers,))
    runner.start()
    deadline = time.monotonic() + 60
    while len(handled) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    for consumer in consumers:
        consumer.stop()
    runner.join(30)
    assert sorted(handled) == ["j0", "j1", "j2", "j3"]
    assert not both_busy.broken
    assert _depth(ch, inq) == 0
    conn.close()


def test_a_publish_its_caller_stopped_waiting_for_leaves_the_publisher_working(
    queues: tuple[str, str],
) -> None:
    """A cancelled wait (asyncio.wait_for timing out cancels the future) must not break
    the publisher's connection and the publishes queued behind it."""
    publisher = ThreadedPublisher(AMQP_URL, [queues[0]])
    publisher.start()
    try:
        connection = publisher._connection
        message = events_pb2.VideoUploaded(job_id="j")
        cancelled = [publisher.publish(queues[0], message, "j") for _ in range(50)]
        for future in cancelled:
            future.cancel()
        publisher.publish(queues[0], message, "last").result(timeout=10)
        assert publisher._connection is connection, "the connection was never dropped"
    finally:
        publisher.close()


def test_a_handler_that_ignores_the_stop_request_is_reported_not_exited(
    queues: tuple[str, str],
) -> None:
    """Past the grace period the consumer returns, says its handler is stuck, and leaves
    it to the service to exit: no library code ends the process."""
    inbound, _ = queues
    release = threading.Event()

    def deaf(body: bytes, properties: pika.BasicProperties) -> Outcome:
        release.wait(30)
        return Outcome()

    consumer = Consumer(AMQP_URL, inbound, deaf, declare=[inbound], stop_grace=0.3)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    declare_queues(channel, [inbound])
    publish(channel, inbound, events_pb2.VideoUploaded(job_id="j"), "j")
    conn.close()
    started = time.monotonic()
    _run(consumer, until=lambda: consumer._busy is not None)
    release.set()
    assert consumer.stuck and time.monotonic() - started < 10
