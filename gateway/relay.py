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

The relay also sweeps: a job still PROCESSING after its converter's lease ran out (the
converter died and no redelivery took it over) is put back to QUEUED with a pending
announcement, and the converter ends it FAILED once it has been started too often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
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
        self.publish_timeout = publish_timeout
        self.interval = interval
        self.clock = clock

    def mark_pending(self, job: dict[str, Any]) -> None:
        """Give a job record, before it is stored, its pending announcement: when it was
        last tried (epoch seconds), the queue it is for, and the trace it belongs to (the
        upload's), which the announcement joins whenever it is published."""
        job["announce_at"] = self.clock()
        job["announce_queue"] = self.video_queue
        job["trace_context"] = tracing.carrier()

    async def announce(self, job: dict[str, Any]) -> None:
        """Publish the job's VideoUploaded, wait for the broker's confirm, clear the mark.
        Raises if the broker did not confirm within ``publish_timeout``."""
        with tracing.attached(tracing.extract(job.get("trace_context"))):
            publishing = self.publisher.publish(
                self.video_queue, jobs.video_uploaded(job), str(job["_id"])
            )
        try:
            await asyncio.wait_for(asyncio.wrap_future(publishing), self.publish_timeout)
        except BaseException:
            ANNOUNCEMENTS.labels("failed").inc()
            raise
        ANNOUNCEMENTS.labels("confirmed").inc()
        await self.jobs.update_one(
            {"_id": job["_id"], "announce_at": job["announce_at"]},
            {"$unset": {"announce_at": "", "announce_queue": ""}},
        )

    async def run(self) -> None:
        """Relay and sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep_expired_leases()
                await self.relay_pending()
                await self.expire_finished_jobs()
            except PyMongoError as exc:
                log.warning("outbox relay: store unavailable", error=str(exc))
            await asyncio.sleep(self.interval)

    async def relay_pending(self) -> int:
        """Publish announcements left pending for longer than an upload waits for one."""
        relayed = 0
        for _ in range(BATCH):
            now = self.clock()
            job = await self.jobs.find_one_and_update(
                {
                    "announce_at": {"$lt": now - self.publish_timeout},
                    "announce_queue": self.video_queue,
                },
                {"$set": {"announce_at": now}},  # taken: another relay skips it for a while
                return_document=ReturnDocument.AFTER,
            )
            if job is None:
                break
            with tracing.attached(tracing.extract(job.get("trace_context"))):
                try:
                    await self.announce(job)
                except Exception as exc:
                    log.warning("outbox relay: broker did not take the job",
                                job_id=str(job["_id"]), error=repr(exc))  # fmt: skip
                    break
                log.info("outbox relay: job announced", job_id=str(job["_id"]))
            relayed += 1
        return relayed

    async def sweep_expired_leases(self) -> int:
        """Put jobs whose converter stopped renewing its lease back in the queue."""
        swept = 0
        for _ in range(BATCH):
            now = self.clock()
            job = await self.jobs.find_one_and_update(
                {"status": jobs.PROCESSING, "locked_until": {"$lt": now, "$gt": 0}},
                {
                    "$set": {
                        "status": jobs.QUEUED,
                        "progress": 0,
                        "locked_until": 0,
                        "announce_at": 0,
                        "announce_queue": self.video_queue,
                        "updated": jobs.now(),
                    }
                },
            )
            if job is None:
                break
            log.warning("job's converter lease expired; queued again", job_id=str(job["_id"]))
            swept += 1
        return swept

    async def expire_finished_jobs(self) -> int:
        """Retention: delete the files of jobs past ``expires_at`` and mark them expired
        (so a download can say so); delete the records themselves ``retention`` later."""
        now = self.clock()
        expired = 0
        due = {"expires_at": {"$lt": now}, "expired_at": {"$exists": False}}
        async for job in self.jobs.find(due).limit(BATCH):
            if job.get("mp3_file_id"):
                await gridfs_io.adiscard(self.db, gridfs_io.MP3S, job["mp3_file_id"])
            await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, job["_id"])
            await self.jobs.update_one({"_id": job["_id"]}, {"$set": {"expired_at": now}})
            log.info("job expired; its files were deleted", job_id=str(job["_id"]))
            expired += 1
        await self.jobs.delete_many({"expired_at": {"$lt": now - self.retention}})
        return expired
