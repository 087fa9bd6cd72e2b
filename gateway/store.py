"""The gateway's MongoDB: videos and MP3s in GridFS, the jobs collection. Async pymongo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from meshcore import gridfs_io, jobs


class FileStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index("owner_id")

    def open_video_upload(
        self, file_id: ObjectId, filename: str, owner_id: str, content_type: str
    ) -> gridfs_io.AsyncFileWriter:
        return gridfs_io.AsyncFileWriter(
            self.db,
            gridfs_io.VIDEOS,
            file_id,
            filename,
            {"owner_id": owner_id, "content_type": content_type},
        )

    async def discard_video(self, file_id: ObjectId) -> None:
        await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, file_id)

    async def insert_job(self, job: dict[str, Any]) -> None:
        await self.jobs.insert_one(job)

    async def delete_job(self, job_id: ObjectId) -> None:
        await self.jobs.delete_one({"_id": job_id})

    async def job(self, owner_id: str, job_id: ObjectId) -> dict[str, Any] | None:
        return await self.jobs.find_one({"_id": job_id, "owner_id": owner_id})

    async def jobs_page(
        self, owner_id: str, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"owner_id": owner_id}
        if before is not None:
            query["_id"] = {"$lt": before}
        return await self.jobs.find(query).sort("_id", -1).limit(limit).to_list()

    async def mp3(self, owner_id: str, file_id: ObjectId) -> dict[str, Any] | None:
        return await self.db[f"{gridfs_io.MP3S}.files"].find_one(
            {"_id": file_id, "metadata.owner_id": owner_id}
        )

    def mp3_chunks(self, files_doc: dict[str, Any]) -> AsyncIterator[bytes]:
        return gridfs_io.aiter_file(self.db, gridfs_io.MP3S, files_doc["_id"], files_doc)
