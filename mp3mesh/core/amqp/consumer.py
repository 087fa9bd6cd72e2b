"""Consuming: one queue with manual acks, prefetch 1, heartbeats that keep beating while a
long handler runs, retries through the retry queues, then the dead-letter queue.

pika connections are not thread-safe, so each connection is owned by exactly one thread:
:class:`Consumer` runs the handler in a worker thread and keeps the connection on the
consuming thread. Nothing here ends the process: a handler that ignores a stop request is
reported (:class:`HandlerStuck`) and the service's main decides.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pika
import pika.exceptions
import structlog
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from mp3mesh.core import tracing
from mp3mesh.core.amqp.publisher import publish
from mp3mesh.core.amqp.topology import connect, declare_queues, retry_queue
from mp3mesh.core.heartbeat import Heartbeat
from mp3mesh.core.metrics import QUEUE_MESSAGES
from mp3mesh.core.settings import BrokerSettings

log = structlog.get_logger()

# How many times a message was sent back through a retry queue.
RETRIES_HEADER = "x-mp3mesh-retries"
M = TypeVar("M", bound=Message)


class UndecodableMessage(ValueError):
    """A message that no retry can make sense of: goes straight to the dead-letter queue."""


class Requeue(Exception):
    """The handler did not fail, it was stopped (shutdown): put the message back at once,
    not counted as a failed try."""


def decode(body: bytes, properties: pika.BasicProperties, message_type: type[M]) -> M:
    expected = message_type.DESCRIPTOR.full_name
    if properties.type != expected:
        raise UndecodableMessage(f"message type {properties.type!r}, expected {expected!r}")
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableMessage(f"cannot parse {expected}: {exc}") from exc
    return message


@dataclass
class Outcome:
    """What a handler decided: messages to publish first, then ack."""

    publish: list[tuple[str, Message, str]] = field(default_factory=list)  # queue, msg, id


Handler = Callable[[bytes, pika.BasicProperties], Outcome]
# Called when a message is about to be dead-lettered after its last retry, with the reason:
# what it returns is published first (e.g. the job's FAILED announcement), so no message
# reaches the dead-letter queue without its job ending with a status the user sees.
GiveUp = Callable[[bytes, pika.BasicProperties, str], Outcome]


def retries_of(properties: pika.BasicProperties) -> int:
    return int((properties.headers or {}).get(RETRIES_HEADER, 0))


# Exit status when a handler ignored a stop request for longer than the grace period.
EXIT_HANDLER_STUCK = 70


class HandlerStuck(RuntimeError):
    """A handler ignored the stop request past the grace period; its message went back to
    the broker with the connection. The process should exit now (EXIT_HANDLER_STUCK), not
    wait for the handler's thread."""


class Consumer:
    """Consumes one queue with manual acks and prefetch 1, on a connection of its own.

    The handler runs in a worker thread while this thread keeps serving the connection
    (heartbeats), so a ten-minute conversion does not get the connection dropped.
    A message is acked only after the handler returned and its follow-up messages were
    confirmed by the broker. An undecodable message is dead-lettered at once. One whose
    handler raised waits in the retry queues (``retry_delays``, one after the other; the
    count travels in a header), then ``give_up`` runs and it is dead-lettered: nothing loops
    and nothing is retried at once. :class:`Requeue` puts it back at once (shutdown).
    """

    def __init__(
        self,
        url: str,
        queue: str,
        handler: Handler,
        declare: Sequence[str],
        *,
        on_stop: Callable[[], None] | None = None,
        stop_grace: float = 5.0,
        retry_delays: Sequence[float] = (),
        give_up: GiveUp | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.heartbeat = heartbeat or Heartbeat(None)  # liveness: beats while connected
        self.url = url
        self.queue = queue
        self.handler = handler
        self.declare = list(declare)
        self.retry_delays = list(retry_delays)
        self.give_up = give_up
        self.on_stop = on_stop
        self.stop_grace = stop_grace
        self._stop = threading.Event()
        self._stop_requested_at = 0.0
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="handler")
        self._busy: concurrent.futures.Future[Outcome] | None = None
        # Set when run() returned with its handler still running past the grace period.
        self.stuck = False

    def stop(self) -> None:
        """Ask the handler to stop (``on_stop``), hand back or finish the message in hand,
        then return from :meth:`run`. Signal-safe."""
        if not self._stop.is_set():
            self._stop_requested_at = time.monotonic()
        self._stop.set()
        if self.on_stop is not None:
            self.on_stop()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except (pika.exceptions.AMQPError, ValueError) as exc:
                # Connection lost, or a publish the broker refused: the unacked message goes
                # back to the queue with the connection, and this loop connects again.
                # (pika reports some losses inside its timers as ValueError.)
                if self._stop.is_set():
                    break
                log.warning("broker connection lost; reconnecting", error=repr(exc))
                self._stop.wait(1)
        if self._busy is not None and not self._busy.done():
            # The broker puts the unacked message back when the connection closed; the
            # caller decides what to do about the handler's thread (HandlerStuck).
            log.error("handler did not stop within the grace period", queue=self.queue)
            self.stuck = True
            self._worker.shutdown(wait=False)
            return
        self._worker.shutdown(wait=True)

    def _past_grace(self) -> bool:
        return self._stop.is_set() and time.monotonic() - self._stop_requested_at > self.stop_grace

    def _wait_for_handler(self) -> None:
        """After a lost connection the handler may still be working on the message the
        broker took back: take no new one until it is done, so that another consumer gets
        it instead of it waiting here. Beats meanwhile: busy, not stuck."""
        while self._busy is not None and not self._busy.done() and not self._past_grace():
            self.heartbeat.beat()
            concurrent.futures.wait([self._busy], timeout=0.5)

    def _consume(self) -> None:
        self._wait_for_handler()
        if self._stop.is_set():
            return
        connection = connect(self.url)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_queues(channel, self.declare, self.retry_delays)
            channel.basic_qos(prefetch_count=1)
            log.info("consuming", queue=self.queue)
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=1):
                self.heartbeat.beat()
                if method is not None:
                    self._handle(connection, channel, method, properties, body)
                if self._stop.is_set():
                    break
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def _handle(self, connection, channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        """Handle and settle one message, in a CONSUMER span of the trace its headers carry
        (the handler's thread runs in it too, so its logs and follow-ups belong to it)."""
        parent = tracing.extract(properties.headers)
        with tracing.messaging_span("process", self.queue, SpanKind.CONSUMER, parent) as span:
            span.set_attribute("messaging.message.id", properties.message_id or "")
            self._settle(connection, channel, method, properties, body)

    def _settled(self, outcome: str) -> None:
        QUEUE_MESSAGES.labels(self.queue, outcome).inc()
        trace.get_current_span().set_attribute("mp3mesh.outcome", outcome)

    def _settle(self, connection, channel, method, properties, body) -> None:  # type: ignore[no-untyped-def]
        handling = contextvars.copy_context()
        future = self._busy = self._worker.submit(handling.run, self.handler, body, properties)
        # Wake process_data_events as soon as the handler is done, not at its time limit.
        future.add_done_callback(lambda _: _wake(connection))
        while not future.done():
            if self._past_grace():
                return  # run() exits; closing the connection requeues the message
            connection.process_data_events(time_limit=0.5)
            self.heartbeat.beat()
        try:
            outcome = future.result()
        except Requeue as exc:
            log.info("message put back", queue=self.queue, reason=str(exc))
            channel.basic_reject(method.delivery_tag, requeue=True)
            self._settled("requeue")
            return
        except UndecodableMessage as exc:
            log.error("dead-lettering undecodable message", queue=self.queue, error=str(exc))
            channel.basic_reject(method.delivery_tag, requeue=False)
            self._settled("dead_letter")
            return
        except Exception as exc:
            self._retry_or_give_up(
                channel, method, properties, body, f"{type(exc).__name__}: {exc}"
            )
            return
        try:
            for queue, message, message_id in outcome.publish:
                publish(channel, queue, message, message_id)
        except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
            self._retry_or_give_up(channel, method, properties, body, f"follow-up refused: {exc}")
            return
        channel.basic_ack(method.delivery_tag)
        self._settled("ack")

    def _retry_or_give_up(self, channel, method, properties, body, reason: str) -> None:  # type: ignore[no-untyped-def]
        retries = retries_of(properties)
        if retries < len(self.retry_delays):
            delay = self.retry_delays[retries]
            log.warning(
                "handler failed; retrying later", queue=self.queue, retry=retries + 1,
                delay_seconds=delay, reason=reason, exc_info=True,
            )  # fmt: skip
            headers = {**(properties.headers or {}), RETRIES_HEADER: retries + 1}
            properties.headers = headers
            channel.basic_publish(
                "", retry_queue(self.queue, delay), body, properties, mandatory=True
            )
            channel.basic_ack(method.delivery_tag)
            self._settled("retry")
            return
        log.error("handler failed for the last time; dead-lettering", queue=self.queue,
                  retries=retries, reason=reason, exc_info=True)  # fmt: skip
        outcome = Outcome()
        if self.give_up is not None:
            try:
                outcome = self.give_up(body, properties, reason)
            except Exception:
                log.exception("give-up hook failed", queue=self.queue)
        for queue, message, message_id in outcome.publish:
            publish(channel, queue, message, message_id)
        channel.basic_reject(method.delivery_tag, requeue=False)
        self._settled("dead_letter")


def _wake(connection: pika.BlockingConnection) -> None:
    """Make the connection's thread return from ``process_data_events`` now."""
    with contextlib.suppress(Exception):  # closed meanwhile: nobody is waiting on it
        connection.add_callback_threadsafe(lambda: None)


def consume_until_signalled(
    settings: BrokerSettings,
    queue: str,
    handler: Handler,
    *,
    declare: Sequence[str] = (),
    on_stop: Callable[[], None] | None = None,
    give_up: GiveUp | None = None,
    concurrency: int = 1,
) -> None:
    """A service's main loop: consume ``queue`` until SIGTERM or SIGINT, then ask the
    handler to stop (``on_stop``), settle the messages in hand and return, within
    ``settings.stop_grace_seconds`` (HandlerStuck if a handler would not stop). Declares
    ``queue`` and the queues in ``declare`` (those the handler's outcomes go to), whoever
    starts first. Failed messages are retried after ``settings.retry_delays_seconds``,
    then ``give_up``.

    ``concurrency`` consumers run side by side, each in its own thread with its own
    connection, channel and prefetch of 1 (pika connections are not thread-safe): the
    handler must be safe to call from several threads at once."""
    heartbeat = Heartbeat(settings.heartbeat_file)
    consumers = [
        Consumer(
            settings.amqp_url,
            queue,
            handler,
            declare=[queue, *declare],
            on_stop=on_stop,
            stop_grace=settings.stop_grace_seconds,
            retry_delays=settings.retry_delays_seconds,
            give_up=give_up,
            heartbeat=heartbeat,
        )
        for _ in range(max(concurrency, 1))
    ]

    def stop(*_: object) -> None:
        for consumer in consumers:
            consumer.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    run_side_by_side(consumers)
    if any(consumer.stuck for consumer in consumers):
        raise HandlerStuck(f"a handler of {queue} did not stop within the grace period")


def run_side_by_side(consumers: Sequence[Consumer]) -> None:
    """Run each consumer in a thread of its own; return once all of them stopped."""
    threads = [
        threading.Thread(target=c.run, name=f"consumer-{i}") for i, c in enumerate(consumers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # a timeout, so that signal handlers run meanwhile
            thread.join(0.5)
