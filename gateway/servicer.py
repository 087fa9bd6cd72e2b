"""FileService: streaming upload into GridFS, streaming download, jobs."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog
from bson import ObjectId
from bson.errors import InvalidId
from google.api import httpbody_pb2

from gateway.auth_interceptor import current_caller
from gateway.store import FileStore
from meshcore import jobs
from meshcore.amqp import ThreadedPublisher
from meshcore.grpc_server import abort
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc

log = structlog.get_logger()

DEFAULT_PAGE_SIZE = 20
MAX_FILENAME_LENGTH = 255
MAX_PAGE_SIZE = 100


async def _object_id(context: grpc.aio.ServicerContext, value: str, what: str) -> ObjectId:
    if not value:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{what} is required")
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{what} {value!r} is not a valid id: expected 24 hexadecimal characters",
        )


class FileServicer(files_pb2_grpc.FileServiceServicer):
    def __init__(
        self,
        store: FileStore,
        publisher: ThreadedPublisher,
        *,
        video_queue: str,
        max_upload_bytes: int,
        publish_timeout: float,
        watch_poll: float,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.video_queue = video_queue
        self.max_upload_bytes = max_upload_bytes
        self.publish_timeout = publish_timeout
        self.watch_poll = watch_poll

    async def Upload(
        self,
        request_iterator: AsyncIterator[files_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.UploadResponse:
        caller = current_caller()
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "upload is empty: send metadata, then the video's bytes",
            )
        meta = first.metadata
        content_type = (
            meta.content_type or first.http_body.content_type or "application/octet-stream"
        )
        filename = meta.filename or "video"
        if len(filename) > MAX_FILENAME_LENGTH:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"filename is longer than {MAX_FILENAME_LENGTH} characters",
            )

        file_id = ObjectId()
        upload = self.store.open_video_upload(file_id, filename, caller.user_id, content_type)
        digest = hashlib.sha256()
        try:
            async for block in _data_chunks(first, requests, context):
                if upload.length + len(block) > self.max_upload_bytes:
                    await abort(
                        context,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"upload is larger than the {self.max_upload_bytes} byte limit",
                    )
                digest.update(block)
                await upload.write(block)
            size = upload.length
            if size == 0:
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "upload is empty: the video has 0 bytes",
                )
            if meta.size_bytes and meta.size_bytes != size:
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"received {size} bytes but metadata.size_bytes says {meta.size_bytes}",
                )
            sha256 = digest.hexdigest()
            if meta.sha256 and meta.sha256.lower() != sha256:
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"content SHA-256 is {sha256} but metadata.sha256 says {meta.sha256}",
                )
            await upload.close()
        except BaseException:
            # Client gone, limit hit, or a bad stream: keep nothing of it.
            await asyncio.shield(upload.discard())
            log.info("upload discarded", file_id=str(file_id), user_id=caller.user_id)
            raise

        job = jobs.new_job(
            video_id=file_id,
            owner_id=caller.user_id,
            owner_email=caller.email,
            filename=filename,
            size=size,
            sha256=sha256,
        )
        try:
            await self.store.insert_job(job)
        except BaseException:
            await asyncio.shield(self.store.discard_video(file_id))  # no video without a job
            raise
        event = events_pb2.VideoUploaded(
            job_id=str(file_id),
            owner_id=caller.user_id,
            owner_email=caller.email,
            video_file_id=str(file_id),
            filename=filename,
            size_bytes=size,
            upload_time=jobs.timestamp(job["created"]),
        )
        try:
            await asyncio.wait_for(
                asyncio.wrap_future(self.publisher.publish(self.video_queue, event, str(file_id))),
                self.publish_timeout,
            )
        except Exception as exc:
            log.error(
                "could not queue conversion; rolling back upload",
                job_id=str(file_id),
                error=str(exc),
            )
            await self.store.delete_job(file_id)
            await self.store.discard_video(file_id)
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the conversion queue is unavailable; nothing was kept, please upload again",
            )
        log.info("video uploaded", job_id=str(file_id), size=size, user_id=caller.user_id)
        return files_pb2.UploadResponse(job=jobs.to_proto(job))

    async def Download(
        self, request: files_pb2.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        caller = current_caller()
        file_id = await _object_id(context, request.file_id or request.fid, "file id")
        files_doc = await self.store.mp3(caller.user_id, file_id)
        if files_doc is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no MP3 with id {file_id}")
        async for chunk in self.store.mp3_chunks(files_doc):
            yield httpbody_pb2.HttpBody(content_type="audio/mpeg", data=chunk)

    async def GetJob(
        self, request: files_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.GetJobResponse:
        job = await self._job(context, request.job_id or request.fid)
        return files_pb2.GetJobResponse(job=jobs.to_proto(job))

    async def WatchJob(
        self, request: files_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[files_pb2.WatchJobResponse]:
        job = await self._job(context, request.job_id)
        last: Any = None
        while True:
            version = (job["status"], job.get("progress"), job.get("updated"))
            if version != last:
                yield files_pb2.WatchJobResponse(job=jobs.to_proto(job))
                last = version
            if job["status"] in jobs.FINAL:
                return
            await asyncio.sleep(self.watch_poll)
            job = await self._job(context, request.job_id)

    async def ListJobs(
        self, request: files_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.ListJobsResponse:
        caller = current_caller()
        if request.page_size < 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "page_size must not be negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = (
            await _object_id(context, request.page_token, "page_token")
            if request.page_token
            else None
        )
        docs = await self.store.jobs_page(caller.user_id, before, size + 1)
        page = docs[:size]
        next_token = str(page[-1]["_id"]) if len(docs) > size else ""
        return files_pb2.ListJobsResponse(
            jobs=[jobs.to_proto(d) for d in page], next_page_token=next_token
        )

    async def _job(self, context: grpc.aio.ServicerContext, job_id: str) -> dict[str, Any]:
        oid = await _object_id(context, job_id, "job id")
        job = await self.store.job(current_caller().user_id, oid)
        if job is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no job with id {oid}")
        return job


async def _data_chunks(
    first: files_pb2.UploadRequest,
    rest: AsyncIterator[files_pb2.UploadRequest],
    context: grpc.aio.ServicerContext,
) -> AsyncIterator[bytes]:
    """The bytes of the upload, from `chunk` (gRPC) or `http_body.data` (REST)."""
    request = first
    while True:
        data = request.chunk or request.http_body.data
        if data:
            yield data
        nxt = await anext(rest, None)
        if nxt is None:
            return
        if nxt.HasField("metadata") and nxt.metadata.ByteSize():
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "metadata must come in the first message only",
            )
        request = nxt
