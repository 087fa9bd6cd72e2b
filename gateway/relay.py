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
relay publishes, so the user's result never waits on a message's retry delays.

The relay also sweeps: a job whose converter stopped renewing its lease (it died, or
stalls) is put back to QUEUED with a pending announcement; the converter ends it FAILED
once it has been started too often. Whether a converter stopped renewing is judged on
this gateway's clock alone (meshcore/jobs.py, LeaseWatch).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from google.protobuf.message import Message
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from gateway.metrics import ANNOUNCEMENTS
from meshcore import gridfs_io, jobs, tracing
from meshcore.amqp import ThreadedPublisher

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
        retention: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = collection
        self.db = collection.database
        self.retention = retention
        self.publisher = publisher
        self.video_queue = video_queue
        # The message each queue's announcement is, built from the record.
        self.messages: dict[str, Callable[[dict[str, Any]], Message]] = {
            video_queue: jobs.video_uploaded
        }
        if mp3_queue is not None:
            self.messages[mp3_queue] = jobs.job_finished
        self.publish_timeout = publish_timeout
        self.interval = interval
        self.clock = clock
        # Looks further apart than this (the store down, this process stalled) do not
        # count as watching a converter's lease.
        self.leases = jobs.LeaseWatch(max_gap=3 * interval + publish_timeout)

    def mark_pending(self, job: dict[str, Any]) -> None:
        """Give a job record, before it is stored, its pending announcement: when it was
        last tried (epoch seconds), the queue it is for, and the trace it belongs to (the
        upload's), which the announcement joins whenever it is published."""
        job.update(jobs.pending_announcement(self.video_queue, self.clock(), tracing.carrier()))

    async def announce(self, job: dict[str, Any]) -> None:
        """Publish the job's pending announcement, wait for the broker's confirm, clear the
        mark. Raises if the broker did not confirm within ``publish_timeout``."""
        queue = job["announce_queue"]
        with tracing.attached(tracing.extract(job.get("trace_context"))):
            publishing = self.publisher.publish(queue, self.messages[queue](job), str(job["_id"]))
        try:
            await asyncio.wait_for(asyncio.wrap_future(publishing), self.publish_timeout)
        except BaseException:
            ANNOUNCEMENTS.labels("failed").inc()
            raise
        ANNOUNCEMENTS.labels("confirmed").inc()
        change = jobs.announced(job["_id"], queue, job["announce_at"])
        await self.jobs.update_one(change.filter, change.update)

    async def run(self) -> None:
        """Relay and sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep_expired_leases()
                await self.relay_pending()
                await self.expire_finished_jobs()
            except PyMongoError as exc:
                self.leases.forget()
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

    async def sweep_expired_leases(self) -> int:
        """Put jobs whose converter stopped renewing its lease back in the queue."""
        held = self.jobs.find(jobs.held(), {"claim": 1, "renewals": 1, "lease_seconds": 1})
        swept = 0
        for record in self.leases.look(await held.to_list()):
            change = jobs.requeue_expired(
                record["_id"], record.get("claim"), record.get("renewals", 0), self.video_queue
            )
            if await self.jobs.find_one_and_update(change.filter, change.update) is None:
                continue  # renewed, finished or put back meanwhile
            log.warning("job's converter stopped renewing its lease; queued again",
                        job_id=str(record["_id"]))  # fmt: skip
            swept += 1
        return swept

    async def expire_finished_jobs(self) -> int:
        """Retention: delete the files of jobs past ``expires_at`` (every MP3 written for
        the job, a lost attempt's included) and mark them expired (so a download can say
        so); delete the records themselves ``retention`` later."""
        now = self.clock()
        expired = 0
        async for job in self.jobs.find(jobs.due_for_expiry(now)).limit(BATCH):
            await self._discard_files(job)
            change = jobs.expire(job["_id"], now)
            await self.jobs.update_one(change.filter, change.update)
            log.info("job expired; its files were deleted", job_id=str(job["_id"]))
            expired += 1
        await self.jobs.delete_many(jobs.expired_before(now - self.retention))
        return expired

    async def _discard_files(self, job: dict[str, Any]) -> None:
        mp3s = self.db[f"{gridfs_io.MP3S}.files"].find({"metadata.job_id": str(job["_id"])})
        mp3_ids = {mp3["_id"] async for mp3 in mp3s}
        if job.get("mp3_file_id"):
            mp3_ids.add(job["mp3_file_id"])
        for mp3_id in mp3_ids:
            await gridfs_io.adiscard(self.db, gridfs_io.MP3S, mp3_id)
        await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, job["_id"])
