"""The gateway's MongoDB: videos and MP3s in GridFS, the jobs collection. Async pymongo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from meshcore import gridfs_io, jobs

log = structlog.get_logger()


class FileStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index("owner_id")

    @asynccontextmanager
    async def atomic_upload(self, job_id: ObjectId, owner_id: str) -> AsyncIterator[None]:
        """One upload's writes, kept all or none: the video's GridFS file (whose id is
        ``job_id``) and the job record, written inside the block.

        On any exception in the block (a refused or broken stream, the client gone, the
        broker down, cancellation) whatever of the two was written is removed, shielded
        from a second cancellation: no video is kept without its job, and no job
        without its whole video.
        """
        try:
            yield
        except BaseException:
            await asyncio.shield(self._remove_upload(job_id))
            log.info("upload discarded", job_id=str(job_id), user_id=owner_id)
            raise

    async def _remove_upload(self, job_id: ObjectId) -> None:
        await self.jobs.delete_one({"_id": job_id})
        await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, job_id)

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
        return await self.jobs.find_one({"_id": job_id, "owner_id": owner_id})

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

    def mp3_chunks(self, files_doc: dict[str, Any]) -> AsyncIterator[bytes]:
        return gridfs_io.aiter_file(self.db, gridfs_io.MP3S, files_doc["_id"], files_doc)
