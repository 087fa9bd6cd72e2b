"""The outbox relay: every job's announcement reaches the broker, whatever failed when.

Why an outbox: the upload is answered OK once the video and the job record are stored in
MongoDB, and the record itself carries its pending announcement (``announce_at``). The
gateway publishes it at once and clears the mark when the broker confirms it; if the
broker is down or refuses it, or the gateway dies first, this relay publishes it later,
with confirms, until one is acked. So a gateway crash after OK cannot lose a job, and a
broker outage at upload time does not throw away a fully stored video (the alternative,
refusing the upload, makes the user send gigabytes again for a blip of the broker).
A message may go out twice (a crash between the confirm and clearing the mark): the
converter claims jobs, so a repeat is harmless.

The converter records a finished job's JobFinished the same way, with its final status:
whatever its own publish did not get confirmed (the broker cut off mid-conversion), the
relay publishes, so the user's result never waits on a message's retry delays. A cancel
(the gateway's CancelJob) records the cancelled job's JobFinished the same way too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from google.protobuf.message import Message
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from mp3mesh.core import jobs, tracing
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.gateway.metrics import ANNOUNCEMENTS

log = structlog.get_logger()

# Jobs handled per round, so one round stays short whatever the backlog.
BATCH = 100


class OutboxRelay:
    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        publisher: ThreadedPublisher,
        *,
        video_queue: str,
        mp3_queue: str | None = None,
        publish_timeout: float,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = collection
        self.publisher = publisher
        self.video_queue = video_queue
        self.mp3_queue = mp3_queue
        # The message each queue's announcement is, built from the record.
        self.messages: dict[str, Callable[[dict[str, Any]], Message]] = {
            video_queue: jobs.video_uploaded
        }
        if mp3_queue is not None:
            self.messages[mp3_queue] = jobs.job_finished
        self.publish_timeout = publish_timeout
        self.interval = interval
        self.clock = clock
        # Publishes followed past their wait (see announce).
        self._following: set[asyncio.Task[None]] = set()

    def mark_pending(self, job: dict[str, Any], *, finished: bool = False) -> None:
        """Give a job record, before it is stored, its pending announcement: when it was
        last tried (epoch seconds), the queue it is for (the video queue's VideoUploaded,
        or with ``finished`` the MP3 queue's JobFinished), and the trace it belongs to
        (the request's), which the announcement joins whenever it is published."""
        queue = self.video_queue
        if finished:
            if self.mp3_queue is None:
                raise ValueError("this relay announces no finished jobs (no mp3_queue)")
            queue = self.mp3_queue
        job.update(jobs.pending_announcement(queue, self.clock(), tracing.carrier()))

    def finished_pending(self, job: dict[str, Any]) -> bool:
        """Whether the record still waits for its JobFinished to be published."""
        return self.mp3_queue is not None and job.get("announce_queue") == self.mp3_queue

    async def announce(self, job: dict[str, Any]) -> None:
        """Publish the job's pending announcement, wait for the broker's confirm, clear the
        mark. Raises if the broker did not confirm within ``publish_timeout``.

        A publish not yet started is called off then. One already sent cannot be: the
        broker may still take it (a memory alarm blocks publishers until it clears), so it
        is followed on until it is confirmed or fails, with the mark kept from the relays
        meanwhile: otherwise the job would be announced twice once the broker resumes."""
        queue = job["announce_queue"]
        with tracing.attached(tracing.extract(job.get("trace_context"))):
            publishing = self.publisher.publish(queue, self.messages[queue](job), str(job["_id"]))
        following = asyncio.get_running_loop().create_task(self._follow(job, publishing))
        self._following.add(following)
        following.add_done_callback(_settled)
        following.add_done_callback(self._following.discard)
        try:
            await asyncio.wait_for(asyncio.shield(following), self.publish_timeout)
        except BaseException:
            ANNOUNCEMENTS.labels("failed").inc()
            publishing.cancel()  # not yet sent: called off, and its follower ends
            raise
        ANNOUNCEMENTS.labels("confirmed").inc()

    async def _follow(
        self, job: dict[str, Any], publishing: concurrent.futures.Future[None]
    ) -> None:
        """Wait for the broker's confirm, then clear the mark. Meanwhile mark the
        announcement tried again every half ``publish_timeout``, so that no relay finds it
        due while it is in the broker's hands; raises if the publish failed (the mark stays
        and a relay publishes the job again once it is due)."""
        job_id, queue, at = job["_id"], job["announce_queue"], job["announce_at"]
        confirm = asyncio.wrap_future(publishing)
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(confirm), self.publish_timeout / 2)
                break
            except TimeoutError:
                fresh = self.clock()
                change = jobs.hold_announcement(job_id, queue, at, fresh)
                with contextlib.suppress(PyMongoError):  # the next try, or the relay
                    held = await self.jobs.update_one(change.filter, change.update)
                    if held.matched_count == 0:
                        return  # claimed meanwhile, or a newer announcement replaced it
                    at = fresh
        change = jobs.announced(job_id, queue, at)
        await self.jobs.update_one(change.filter, change.update)
        if at != job["announce_at"]:
            log.info("outbox: announcement confirmed after a wait", job_id=str(job_id),
                     queue=queue)  # fmt: skip

    async def run(self) -> None:
        """Relay every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.relay_pending()
            except PyMongoError as exc:
                log.warning("outbox relay: store unavailable", error=str(exc))
            await asyncio.sleep(self.interval)

    async def relay_pending(self) -> int:
        """Publish announcements left pending for longer than an upload waits for one."""
        relayed = 0
        for _ in range(BATCH):
            now = self.clock()
            change = jobs.take_announcement(self.messages, now - self.publish_timeout, now)
            job = await self.jobs.find_one_and_update(
                change.filter, change.update, return_document=ReturnDocument.AFTER
            )
            if job is None:
                break
            with tracing.attached(tracing.extract(job.get("trace_context"))):
                try:
                    await self.announce(job)
                except Exception as exc:
                    log.warning("outbox relay: broker did not take the announcement",
                                job_id=str(job["_id"]), error=repr(exc))  # fmt: skip
                    break
                log.info("outbox relay: job announced", job_id=str(job["_id"]),
                         queue=job["announce_queue"])  # fmt: skip
            relayed += 1
        return relayed


def _settled(task: asyncio.Task[None]) -> None:
    """Read a follower's outcome, so that one nobody waits for any more (its publish
    failed after ``announce`` gave up) is not reported as never retrieved."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.info("outbox: announcement not confirmed; the relay will publish it",
                 error=repr(exc))  # fmt: skip
