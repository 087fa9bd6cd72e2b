"""A subscription to every notice of a topic exchange, kept alive: a queue of its own
(exclusive, auto-delete: it goes with the connection), bound to all routing keys, renewed
with a new connection whenever the old one is lost.

For notices that are best effort by themselves (job events, revocations): the caller is
told each time the subscription is (re)made (``on_subscribed``), and catches up on what it
may have missed then (a record read again, a snapshot).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import structlog

from mp3mesh.core.amqp.topology import connect, declare_topic

log = structlog.get_logger()

OnMessage = Callable[[Any, Any, Any, bytes], None]  # pika's (channel, method, properties, body)


def subscribe_until_stopped(
    url: str,
    exchange: str,
    on_message: OnMessage,
    stopping: threading.Event,
    *,
    on_subscribed: Callable[[], None] = lambda: None,
    between: Callable[[], None] = lambda: None,
    poll: float = 0.5,
    what: str = "subscription",
) -> None:
    """Run in the thread that owns the connection (pika connections are not thread-safe)
    until ``stopping`` is set: notices are handed to ``on_message`` within ``poll``
    seconds; ``on_subscribed`` runs once the queue is bound (notices published from then
    on wait in it), ``between`` after each poll."""
    while not stopping.is_set():
        connection = None
        try:
            connection = connect(url)
            channel = connection.channel()
            declare_topic(channel, exchange)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, exchange, routing_key="#")
            channel.basic_consume(queue, on_message, auto_ack=True)
            on_subscribed()
            while not stopping.is_set():
                connection.process_data_events(time_limit=poll)
                between()
        except Exception as exc:
            log.warning(f"{what} lost; resubscribing", error=repr(exc))
            stopping.wait(1)
        finally:
            if connection is not None and connection.is_open:
                with contextlib.suppress(Exception):
                    connection.close()
