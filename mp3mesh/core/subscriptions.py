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


class Subscription:
    """The subscription, kept by a thread of its own that owns the connection (pika
    connections are not thread-safe) from ``start`` until ``close``: notices are handed
    to ``on_message`` within ``poll`` seconds; ``on_subscribed`` runs once the queue is
    bound (notices published from then on wait in it), ``between`` after each poll. Both
    run in that thread, and wait on ``stopping`` if they wait, so ``close`` is not held."""

    def __init__(
        self,
        url: str,
        exchange: str,
        on_message: OnMessage,
        *,
        name: str,
        on_subscribed: Callable[[], None] = lambda: None,
        between: Callable[[], None] = lambda: None,
        poll: float = 0.5,
    ) -> None:
        self.url, self.exchange, self.name = url, exchange, name
        self._on_message, self._on_subscribed, self._between = on_message, on_subscribed, between
        self._poll = poll
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            connection = None
            try:
                connection = connect(self.url)
                channel = connection.channel()
                declare_topic(channel, self.exchange)
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                channel.queue_bind(queue, self.exchange, routing_key="#")
                channel.basic_consume(queue, self._on_message, auto_ack=True)
                self._on_subscribed()
                while not self.stopping.is_set():
                    connection.process_data_events(time_limit=self._poll)
                    self._between()
            except Exception as exc:
                log.warning(f"{self.name} subscription lost; resubscribing", error=repr(exc))
                self.stopping.wait(1)
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(Exception):
                        connection.close()
