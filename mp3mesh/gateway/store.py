"""The gateway's MongoDB: videos and MP3s in GridFS, the jobs collection. Async pymongo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pymongo
import pymongo.errors
import structlog
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from mp3mesh.core import gridfs_io, jobs
from mp3mesh.gateway.idempotency import Keys
from mp3mesh.gateway.upload import UploadRefused

log = structlog.get_logger()


# One document per upload being received: {_id: job id, started: epoch seconds, renewals:
# its gateway's heartbeats so far, lease_seconds: how long it may go without one}.
UPLOADS = "uploads_in_progress"
# An upload whose gateway stopped heartbeating for this long is an orphan, by default.
UPLOAD_LEASE_SECONDS = 300.0
# What housekeeping assumes of a mark written before marks had a lease.
UNLEASED_MARK_SECONDS = 6 * 3600.0
# The first try at removing a failed upload is short: the client waits for it.
FIRST_REMOVAL_SECONDS = 2.0
# After the store came back, a removal is checked again this much later: writes the store
# received before it hung may still land after the first successful removal.
RECHECK_SECONDS = 2.0


class UploadLost(UploadRefused):
    """Housekeeping removed this upload as an orphan (its gateway stalled past the upload's
    lease): it must not be recorded."""

    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.ABORTED,
            "the upload stalled for too long and was removed; please send it again",
        )


class FileStore:
    def __init__(self, db: AsyncDatabase[Any], upload_lease: float = UPLOAD_LEASE_SECONDS) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]
        self.upload_lease = upload_lease
        self._cleanups: set[asyncio.Task[None]] = set()

    def _track(self, cleanup: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(cleanup)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def finish_cleanups(self, grace: float) -> None:
        """Wait (at most ``grace`` seconds) for removals still retrying in the background;
        called on shutdown, before the client is closed."""
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=grace)

    async def ensure_indexes(self) -> None:
        """Indexes for every lookup the API, the relay and housekeeping make."""
        for field in jobs.INDEXED:
            await self.jobs.create_index(field)
        # Retention finds every MP3 written for a job (a lost attempt's included).
        await self.db[f"{gridfs_io.MP3S}.files"].create_index("metadata.job_id")
        await self.db[UPLOADS].create_index("started")
        # Tombstones of deleted jobs go by themselves on MongoDB (TTL); housekeeping
        # removes them too, for the stand-in.
        await self.db[jobs.TOMBSTONES].create_index(
            "deleted", expireAfterSeconds=jobs.TOMBSTONE_SECONDS
        )
        await Keys(self.db, UPLOADS).ensure_indexes()
        for field in jobs.TOMBSTONES_INDEXED:
            await self.db[jobs.TOMBSTONES].create_index(field)

    @asynccontextmanager
    async def atomic_upload(self, job_id: ObjectId, owner_id: str) -> AsyncIterator[None]:
        """One upload's writes, kept all or none: the video's GridFS file (whose id is
        ``job_id``) and the job record, written inside the block.

        On any exception in the block (a refused or broken stream, the client gone, the
        broker down, cancellation) whatever of the two was written is removed, shielded
        from a second cancellation: no video is kept without its job, and no job
        without its whole video.
        """
        # Marked first, and kept alive by heartbeats while the upload runs, so that the
        # upload of a gateway that died can be told from a live one by any gateway's
        # housekeeping (the chunks alone cannot be listed on every store).
        mark = {"_id": job_id, "started": time.time(), "renewals": 0,
                "lease_seconds": self.upload_lease}  # fmt: skip
        await self.db[UPLOADS].insert_one(mark)
        heartbeat = asyncio.create_task(self._heartbeat(job_id))
        try:
            yield
        except BaseException:
            # Shielded and tracked: a cancelled call (client gone, server stopping) does
            # not cancel its cleanup, and shutdown waits for it (finish_cleanups).
            log.info("upload discarded", job_id=str(job_id), user_id=owner_id)
            await asyncio.shield(self._track(self._remove_upload(job_id)))
            raise
        finally:
            heartbeat.cancel()
        await self.db[UPLOADS].delete_one({"_id": job_id})

    async def _heartbeat(self, job_id: ObjectId) -> None:
        """Beat five times per lease: a beat or two lost to a slow store costs nothing."""
        while True:
            await asyncio.sleep(self.upload_lease / 5)
            try:
                await self._beat(job_id)
            except PyMongoError as exc:
                log.warning("upload heartbeat failed", job_id=str(job_id), error=repr(exc))

    async def _beat(self, job_id: ObjectId) -> bool:
        """One heartbeat; whether the upload's mark is still there."""
        beat = await self.db[UPLOADS].update_one({"_id": job_id}, {"$inc": {"renewals": 1}})
        return beat.matched_count == 1

    async def upload_marks(self) -> list[dict[str, Any]]:
        """Every upload in progress, for housekeeping's watch of their heartbeats."""
        marks = await self.db[UPLOADS].find({}, {"renewals": 1, "lease_seconds": 1}).to_list()
        for mark in marks:
            mark.setdefault("lease_seconds", UNLEASED_MARK_SECONDS)
        return marks

    async def remove_orphan(self, mark: dict[str, Any]) -> bool:
        """Remove an upload whose gateway stopped heartbeating, as housekeeping saw it
        (``mark``): conditioned on that heartbeat count, so a beat landing meanwhile keeps
        it. One whose job was recorded (the gateway died just after) is kept; only its
        mark goes. Whether the upload's files were removed."""
        seen = {"_id": mark["_id"], "renewals": mark.get("renewals")}
        if not (await self.db[UPLOADS].delete_one(seen)).deleted_count:
            return False
        if await self.jobs.find_one({"_id": mark["_id"]}, {"_id": 1}) is not None:
            return False
        await self._remove_now(mark["_id"])
        log.info("removed an upload its gateway stopped heartbeating", job_id=str(mark["_id"]))
        return True

    async def _remove_upload(self, job_id: ObjectId) -> None:
        """Remove now if the store answers quickly; otherwise keep trying in the background
        (the store is down or hung), so no orphan chunks are left once it is back."""
        try:
            with pymongo.timeout(FIRST_REMOVAL_SECONDS):
                await self._remove_now(job_id)
        except PyMongoError as exc:
            log.warning("upload removal deferred: store unavailable", job_id=str(job_id),
                        error=repr(exc))  # fmt: skip
            self._track(self._remove_later(job_id))

    async def _remove_now(self, job_id: ObjectId) -> int:
        await self.jobs.delete_one({"_id": job_id})
        removed = await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, job_id)
        await self.db[UPLOADS].delete_one({"_id": job_id})
        return removed

    async def _remove_later(self, job_id: ObjectId) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(PyMongoError), wait=wait_exponential(max=10)
        ):
            with attempt:
                await self._remove_now(job_id)
                await asyncio.sleep(RECHECK_SECONDS)
                if await self._remove_now(job_id):
                    raise pymongo.errors.OperationFailure("late writes removed; checking again")
        log.info("deferred upload removal done", job_id=str(job_id))

    def open_video_file(
        self, job_id: ObjectId, owner_id: str, filename: str, content_type: str
    ) -> gridfs_io.AsyncFileWriter:
        """The job's video, to be written; its GridFS file id is the job id."""
        return gridfs_io.AsyncFileWriter(
            self.db,
            gridfs_io.VIDEOS,
            job_id,
            filename,
            {"owner_id": owner_id, "content_type": content_type},
            overlap=True,
        )

    async def insert_job(self, job: dict[str, Any]) -> None:
        """Record the job of an upload, unless housekeeping removed the upload meanwhile
        (UploadLost)."""
        if not await self._beat(job["_id"]):
            raise UploadLost()
        await self.jobs.insert_one(job)

    async def job(self, owner_id: str, job_id: ObjectId) -> dict[str, Any] | None:
        return await self.jobs.find_one(jobs.owned(owner_id, job_id))

    async def jobs_page(
        self, owner_id: str, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"owner_id": owner_id}
        if before is not None:
            query["_id"] = {"$lt": before}
        return await self.jobs.find(query).sort("_id", -1).limit(limit).to_list()

    async def mp3(self, owner_id: str, mp3_id: ObjectId) -> dict[str, Any] | None:
        return await self.db[f"{gridfs_io.MP3S}.files"].find_one(
            {"_id": mp3_id, "metadata.owner_id": owner_id}
        )

    async def job_of_mp3(self, owner_id: str, mp3_id: ObjectId) -> dict[str, Any] | None:
        return await self.jobs.find_one(jobs.owned_with_mp3(owner_id, mp3_id))

    def mp3_windows(
        self, files_doc: dict[str, Any], start: int = 0, stop: int | None = None
    ) -> AsyncIterator[list[bytes]]:
        return gridfs_io.aiter_windows(
            self.db, gridfs_io.MP3S, files_doc["_id"], files_doc, start, stop
        )

    async def apply(self, change: jobs.Change) -> dict[str, Any] | None:
        """Apply one transition; the record after it, or None if it matched nothing."""
        return await self.jobs.find_one_and_update(
            change.filter, change.update, return_document=pymongo.ReturnDocument.AFTER
        )

    async def tombstone(self, owner_id: str, job_id: ObjectId) -> dict[str, Any] | None:
        return await self.db[jobs.TOMBSTONES].find_one(jobs.owned(owner_id, job_id))

    async def tombstone_of_mp3(self, owner_id: str, mp3_id: ObjectId) -> dict[str, Any] | None:
        return await self.db[jobs.TOMBSTONES].find_one(jobs.owned_with_mp3(owner_id, mp3_id))

    async def has_video(self, job_id: ObjectId) -> bool:
        videos = self.db[f"{gridfs_io.VIDEOS}.files"]
        return await videos.find_one({"_id": job_id}, {"_id": 1}) is not None

    async def delete_job(self, record: dict[str, Any]) -> bool:
        """Delete the job ``record`` and its files, leaving a tombstone: first the
        tombstone, then the record (a converter holding it is fenced out from here on and
        removes its own partial MP3), then every file written for it. Whether this call
        deleted the record."""
        stone = jobs.tombstone(record)
        await self.db[jobs.TOMBSTONES].replace_one({"_id": stone["_id"]}, stone, upsert=True)
        deleted = await self.jobs.delete_one(jobs.deletion(record["owner_id"], record["_id"]))
        await self.discard_job_files(record)
        return bool(deleted.deleted_count)

    async def discard_job_files(self, job: dict[str, Any]) -> None:
        """Every file of the job: its video, and each MP3 written for it (a lost
        attempt's included)."""
        mp3s = self.db[f"{gridfs_io.MP3S}.files"].find({"metadata.job_id": str(job["_id"])})
        mp3_ids = {mp3["_id"] async for mp3 in mp3s}
        if job.get("mp3_file_id"):
            mp3_ids.add(job["mp3_file_id"])
        for mp3_id in mp3_ids:
            await gridfs_io.adiscard(self.db, gridfs_io.MP3S, mp3_id)
        await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, job["_id"])
