"""Publishing: persistent, typed protobuf messages to queues with publisher confirms,
transient notices to topic exchanges, and :class:`ThreadedPublisher`, which gives asyncio
code a thread that owns its connection (pika connections are not thread-safe) and takes
work through ``add_callback_threadsafe``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Sequence

import pika
import pika.exceptions
import structlog
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from pika.adapters.blocking_connection import BlockingChannel

from mp3mesh.core import tracing
from mp3mesh.core.amqp.topology import connect, declare_queues, declare_topic

log = structlog.get_logger()

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"


def typed(message: Message, **properties: object) -> pika.BasicProperties:
    """Properties that say what the body is: a protobuf message of this type."""
    return pika.BasicProperties(
        content_type=PROTOBUF_CONTENT_TYPE, type=message.DESCRIPTOR.full_name, **properties
    )


def publish(channel: BlockingChannel, queue: str, message: Message, message_id: str) -> None:
    """Publish persistently; with confirms on, returns only once the broker has it. A
    PRODUCER span of the current trace, which the headers carry to the consumer."""
    with tracing.messaging_span("publish", queue, SpanKind.PRODUCER) as span:
        span.set_attribute("messaging.message.id", message_id)
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=message.SerializeToString(),
            properties=typed(
                message,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=message_id,
                headers=tracing.carrier(),
            ),
            mandatory=True,
        )


def publish_event(
    channel: BlockingChannel, exchange: str, routing_key: str, message: Message
) -> None:
    """Publish a transient notice to a topic exchange; nobody subscribed is no error."""
    channel.basic_publish(
        exchange=exchange,
        routing_key=routing_key,
        body=message.SerializeToString(),
        properties=typed(message, delivery_mode=pika.DeliveryMode.Transient),
    )


class ThreadedPublisher:
    """Publishes from asyncio (or any) code through one connection owned by one thread:
    confirmed messages to the queues the caller names (``declare``), and notices to the
    topic exchanges it names (``topics``)."""

    def __init__(self, url: str, declare: Sequence[str], topics: Sequence[str] = ()) -> None:
        self.url = url
        self.declare = list(declare)
        self.topics = list(topics)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)

    def start(self, timeout: float = 60) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("could not connect to RabbitMQ")

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def publish(
        self, queue: str, message: Message, message_id: str
    ) -> concurrent.futures.Future[None]:
        """Resolves once the broker confirmed the message; fails if it could not."""

        def _publish() -> None:
            assert self._channel is not None
            publish(self._channel, queue, message, message_id)

        return self._in_thread(_publish)

    def publish_event(
        self, exchange: str, routing_key: str, message: Message
    ) -> concurrent.futures.Future[None]:
        """Resolves once the broker took the notice (confirms are on: they also keep the
        notices of one caller in order)."""

        def _publish() -> None:
            assert self._channel is not None
            publish_event(self._channel, exchange, routing_key, message)

        return self._in_thread(_publish)

    def _in_thread(self, work: Callable[[], None]) -> concurrent.futures.Future[None]:
        """Run ``work`` in the connection's thread; its outcome in a future."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        connection = self._connection
        caller = otel_context.get_current()  # the publish joins the caller's trace
        if connection is None or not connection.is_open:
            future.set_exception(pika.exceptions.AMQPConnectionError("not connected to RabbitMQ"))
            return future

        def run() -> None:
            # A caller that stopped waiting (a timed-out wait_for cancels the future) gets
            # nothing published; a running future can no longer be cancelled, so setting
            # its outcome below cannot fail inside pika's callback and drop the connection.
            if not future.set_running_or_notify_cancel():
                return
            try:
                with tracing.attached(caller):
                    work()
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        try:
            connection.add_callback_threadsafe(run)
        except Exception as exc:
            future.set_exception(exc)
        return future

    def _open(self) -> None:
        self._connection = connect(self.url)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        declare_queues(self._channel, self.declare)
        for exchange in self.topics:
            declare_topic(self._channel, exchange)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._open()
                self._ready.set()
                assert self._connection is not None
                while not self._stopping.is_set():
                    self._connection.process_data_events(time_limit=0.5)
            except Exception as exc:
                # Not only AMQPError: a connection lost inside a publish callback surfaces
                # from pika's timers as a ValueError. Whatever it was, the thread must live
                # on and connect again, or every later publish fails.
                log.warning("publisher connection lost; reconnecting", error=repr(exc))
                self._discard_connection()
                self._stopping.wait(1)
        self._discard_connection()

    def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()
