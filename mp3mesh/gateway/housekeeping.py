"""Housekeeping: the gateway's sweeps of the job records, each round every ``interval``.

- Leases: a job whose converter stopped renewing its lease (it died, or stalls) is put
  back to QUEUED with its VideoUploaded pending, for the outbox relay (mp3mesh/gateway/relay.py)
  to publish; the converter ends it FAILED once it has been started too often. Whether a
  converter stopped renewing is judged on this gateway's clock alone (mp3mesh/core/jobs.py,
  LeaseWatch), so a clock skew between machines expires nothing.
- Lost announcements: a job left QUEUED, unclaimed and unannounced for ``queued_patience``
  (its message was lost, or its give-up failed in an outage) is announced again, so no
  job stays unfinished.
- Retention: the files of jobs past ``expires_at`` go, then, ``retention`` later, their
  records.
- Resumable uploads (mp3mesh/gateway/resumable.py) past their expiry go, with what they stored
  (unless they became a job).
- Orphan uploads: an upload whose gateway stopped heartbeating for its lease (the
  gateway died mid-upload) loses what it wrote, watched the same way; a live upload of
  another gateway keeps beating and is never touched.

Every gateway runs it; the transitions are conditioned on what each one saw, so two
gateways sweeping at once do each thing once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import structlog
from pymongo.errors import PyMongoError

from mp3mesh.core import jobs
from mp3mesh.gateway.idempotency import KEY_SECONDS, KEYS
from mp3mesh.gateway.resumable import ResumableUploads
from mp3mesh.gateway.store import FileStore

log = structlog.get_logger()

# Jobs handled per round, so one round stays short whatever the backlog.
BATCH = 100


class Housekeeping:
    def __init__(
        self,
        store: FileStore,
        *,
        video_queue: str,
        interval: float,
        retention: float = 24 * 3600,
        queued_patience: float = 3600,
        clock: Callable[[], float] = time.time,
        resumable: ResumableUploads | None = None,
    ) -> None:
        self.store = store
        self.resumable = resumable
        self.queued_patience = queued_patience
        self.jobs = store.jobs
        self.db = store.db
        self.video_queue = video_queue
        self.interval = interval
        self.retention = retention
        self.clock = clock
        # Looks further apart than a few rounds (the store down, this process stalled)
        # do not count as watching a converter's lease.
        self.leases = jobs.LeaseWatch(max_gap=3 * interval + 5)
        self.uploads = jobs.LeaseWatch(max_gap=3 * interval + 5)
        self.queued = jobs.LeaseWatch(max_gap=3 * interval + 5)

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep_expired_leases()
                await self.sweep_orphan_uploads()
                await self.expire_resumable_uploads()
                await self.announce_stalled_jobs()
                await self.expire_finished_jobs()
            except PyMongoError as exc:
                for watch in (self.leases, self.uploads, self.queued):
                    watch.forget()
                log.warning("housekeeping: store unavailable", error=str(exc))
            await asyncio.sleep(self.interval)

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

    async def sweep_orphan_uploads(self) -> int:
        """Remove the uploads whose gateway stopped heartbeating."""
        removed = 0
        for mark in self.uploads.look(await self.store.upload_marks()):
            removed += await self.store.remove_orphan(mark)
        return removed

    async def expire_resumable_uploads(self) -> int:
        """Remove the resumable uploads past their expiry, with their stored bytes."""
        if self.resumable is None:
            return 0
        return await self.resumable.expire(self.jobs, BATCH)

    async def announce_stalled_jobs(self) -> int:
        """Announce again the jobs that waited QUEUED and unannounced for too long."""
        waiting = await self.jobs.find(jobs.unannounced_queued(), {"renewals": 1}).to_list()
        watched = [{**job, "lease_seconds": self.queued_patience} for job in waiting]
        announced = 0
        for job in self.queued.look(watched):
            change = jobs.announce_again(job["_id"], job.get("renewals", 0), self.video_queue)
            if await self.jobs.find_one_and_update(change.filter, change.update) is not None:
                log.warning("job waited unannounced; announced again", job_id=str(job["_id"]))
                self.queued.restart(job["_id"])
                announced += 1
        return announced

    async def expire_finished_jobs(self) -> int:
        """Retention: delete the files of jobs past ``expires_at`` (every MP3 written for
        the job, a lost attempt's included) and mark them expired (so a download can say
        so); delete the records themselves ``retention`` later."""
        now = self.clock()
        expired = 0
        async for job in self.jobs.find(jobs.due_for_expiry(now)).limit(BATCH):
            await self.store.discard_job_files(job)
            change = jobs.expire(job["_id"], now)
            await self.jobs.update_one(change.filter, change.update)
            log.info("job expired; its files were deleted", job_id=str(job["_id"]))
            expired += 1
        await self.jobs.delete_many(jobs.expired_before(now - self.retention))
        # What the TTL indexes remove on MongoDB; the stand-in keeps them until here.
        await self.db[jobs.TOMBSTONES].delete_many(
            {"deleted": {"$lt": jobs.now() - dt.timedelta(seconds=jobs.TOMBSTONE_SECONDS)}}
        )
        await self.db[KEYS].delete_many(
            {"created": {"$lt": jobs.now() - dt.timedelta(seconds=KEY_SECONDS)}}
        )
        return expired
