"""Job changes pushed to the gateway: what drives WatchJob.

The converter publishes every change of a job to the ``job.events`` topic exchange
(``mp3mesh.events.v1.JobChanged``, routed by job id). Each gateway binds a queue of its own
(exclusive, auto-delete: it goes with the gateway's connection) to all of them, consumed
by one thread that owns the connection (pika connections are not thread-safe), and hands
each change to the event loop, where the watchers of that job get it.

Notices are best effort: a gateway that was not subscribed when a change happened (it
was starting, or reconnecting) misses it. Watchers therefore read the record when they
start, again when the subscription is renewed, and after a quiet spell (the safety poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import structlog
from google.protobuf.message import DecodeError

from mp3mesh.core.subscriptions import Subscription
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2

log = structlog.get_logger()

# What a watcher's queue holds: a job as it changed, or None for "read the record again".
Change = files_pb2.Job | None


class JobEventSubscriber:
    def __init__(self, url: str, exchange: str) -> None:
        self.exchange = exchange
        self._watchers: dict[str, set[asyncio.Queue[Change]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = threading.Event()
        self._subscription = Subscription(
            url, exchange, self._on_message, name="job-events", on_subscribed=self._subscribed_now
        )

    async def start(self, wait: float = 10.0) -> None:
        """Subscribe; waits up to ``wait`` seconds for it, but starts watchers either way
        (they poll until the broker is reachable)."""
        self._loop = asyncio.get_running_loop()
        self._subscription.start()
        if not await asyncio.to_thread(self._subscribed.wait, wait):
            log.warning("not subscribed to job events yet; watchers poll meanwhile")

    def close(self) -> None:
        self._subscription.close()

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Queue[Change]]:
        """The changes of one job, for the with-block. Call from the event loop."""
        changes: asyncio.Queue[Change] = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(changes)
        try:
            yield changes
        finally:
            watchers = self._watchers.get(job_id, set())
            watchers.discard(changes)
            if not watchers:
                self._watchers.pop(job_id, None)

    def _dispatch(self, job: Change, job_id: str | None) -> None:
        """In the event loop: to the watchers of ``job_id``, or to all of them."""
        if job_id is None:
            targets = [q for queues in self._watchers.values() for q in queues]
        else:
            targets = list(self._watchers.get(job_id, ()))
        for changes in targets:
            changes.put_nowait(job)

    def _to_loop(self, job: Change, job_id: str | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._dispatch, job, job_id)

    def _on_message(self, channel, method, properties, body: bytes) -> None:  # type: ignore[no-untyped-def]
        if properties.type != events_pb2.JobChanged.DESCRIPTOR.full_name:
            return
        event = events_pb2.JobChanged()
        try:
            event.ParseFromString(body)
        except DecodeError:
            log.warning("undecodable job event dropped", routing_key=method.routing_key)
            return
        self._to_loop(event.job, event.job.id)

    def _subscribed_now(self) -> None:
        self._subscribed.set()
        self._to_loop(None, None)  # changes may have been missed: read again
