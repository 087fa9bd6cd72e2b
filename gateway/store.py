"""The gateway's MongoDB: videos and MP3s in GridFS, the jobs collection. Async pymongo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pymongo
import pymongo.errors
import structlog
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from meshcore import gridfs_io, jobs

log = structlog.get_logger()


# One document per upload being received: {_id: job id, started: epoch seconds}.
UPLOADS = "uploads_in_progress"
# The first try at removing a failed upload is short: the client waits for it.
FIRST_REMOVAL_SECONDS = 2.0
# After the store came back, a removal is checked again this much later: writes the store
# received before it hung may still land after the first successful removal.
RECHECK_SECONDS = 2.0


class FileStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]
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

    @asynccontextmanager
    async def atomic_upload(self, job_id: ObjectId, owner_id: str) -> AsyncIterator[None]:
        """One upload's writes, kept all or none: the video's GridFS file (whose id is
        ``job_id``) and the job record, written inside the block.

        On any exception in the block (a refused or broken stream, the client gone, the
        broker down, cancellation) whatever of the two was written is removed, shielded
        from a second cancellation: no video is kept without its job, and no job
        without its whole video.
        """
        # Marked first, so a gateway killed mid-upload leaves a trace the startup sweep
        # finds (the chunks alone cannot be listed on every store: see sweep_unfinished).
        await self.db[UPLOADS].insert_one({"_id": job_id, "started": time.time()})
        try:
            yield
        except BaseException:
            # Shielded and tracked: a cancelled call (client gone, server stopping) does
            # not cancel its cleanup, and shutdown waits for it (finish_cleanups).
            log.info("upload discarded", job_id=str(job_id), user_id=owner_id)
            await asyncio.shield(self._track(self._remove_upload(job_id)))
            raise
        await self.db[UPLOADS].delete_one({"_id": job_id})

    async def sweep_unfinished(self, older_than: float) -> int:
        """Startup sweep: uploads begun more than ``older_than`` seconds ago and never
        finished nor removed (their gateway died) lose what they wrote. One whose job was
        recorded (the gateway died just after) is kept; only its mark goes."""
        stale = (
            await self.db[UPLOADS].find({"started": {"$lt": time.time() - older_than}}).to_list()
        )
        removed = 0
        for mark in stale:
            if await self.jobs.find_one({"_id": mark["_id"]}, {"_id": 1}) is not None:
                await self.db[UPLOADS].delete_one({"_id": mark["_id"]})
                continue
            await self._remove_now(mark["_id"])
            log.info("removed an upload its gateway never finished", job_id=str(mark["_id"]))
            removed += 1
        return removed

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
        )

    async def insert_job(self, job: dict[str, Any]) -> None:
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

    def mp3_windows(self, files_doc: dict[str, Any]) -> AsyncIterator[list[bytes]]:
        return gridfs_io.aiter_windows(self.db, gridfs_io.MP3S, files_doc["_id"], files_doc)
