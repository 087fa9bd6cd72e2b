"""FileService: streaming upload into GridFS, streaming download, jobs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from bson import ObjectId
from bson.errors import InvalidId

from mp3mesh.core import gridfs_io, jobs, options, tracing
from mp3mesh.core.grpc_server import abort
from mp3mesh.core.limits import MAX_ID_LENGTH, too_long
from mp3mesh.core.timestamps import timestamp
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc
from mp3mesh.gateway.auth_interceptor import Caller, current_caller
from mp3mesh.gateway.bounds import ClientBounds, TooMany
from mp3mesh.gateway.download_wire import body_prefix, http_bodies
from mp3mesh.gateway.idempotency import Keys, key_from, same_resumable, same_upload
from mp3mesh.gateway.job_events import JobEventSubscriber
from mp3mesh.gateway.metrics import DOWNLOAD_BYTES, UPLOADS
from mp3mesh.gateway.relay import OutboxRelay
from mp3mesh.gateway.resumable import ResumableUploads
from mp3mesh.gateway.resumable import to_proto as upload_proto
from mp3mesh.gateway.store import UPLOADS as UPLOAD_MARKS
from mp3mesh.gateway.store import FileStore
from mp3mesh.gateway.upload import Discard, ReceivedVideo, UploadRefused, receive_video

log = structlog.get_logger()
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FINAL_STATUSES = {jobs.status_to_proto(status) for status in jobs.FINAL}
# Download's messages carry about this much: GridFS chunks (255 KiB) joined by four, so
# the per-message cost (gRPC framing, Envoy's transcoder, the shim) is paid a quarter as
# often; well under the 4 MiB clients accept by default.
DOWNLOAD_MESSAGE_BYTES = 1024 * 1024
MP3_BODY = body_prefix("audio/mpeg")
# A cancel or retry reads the job and writes conditioned on what it read; a converter's
# write in between makes it read again, this many times at most.
CONTROL_TRIES = 5
BUSY = "the job changed while this request was applied; send it again"


# Download's initial metadata: the MP3's entity tag and whole length (files.proto).
ETAG_KEY = "etag"
SIZE_KEY = "mp3mesh-size"


def mp3_etag(files_doc: dict[str, Any]) -> str:
    """A strong entity tag: an MP3 is written once and never changed, so its id and
    length name its bytes."""
    return f'"{files_doc["_id"]}-{files_doc["length"]}"'


def _new_job(job_id: ObjectId, caller: Caller, video: ReceivedVideo) -> dict[str, Any]:
    """The QUEUED record of a stored video's job (Upload's and a resumable upload's)."""
    return jobs.new_job(
        job_id=job_id,
        owner_id=caller.user_id,
        owner_email=caller.email,
        filename=video.filename,
        size=video.size,
        sha256=video.sha256,
        options=video.options,
    )


def _newer(change: files_pb2.Job, current: files_pb2.Job) -> bool:
    """A change worth sending: different, and not older than what the watcher has (a
    notice can arrive after a read that already saw a later state).

    What can only come later is judged without clocks: a final state (nothing follows
    it), a new attempt, more progress within the same attempt. ``update_time`` decides
    the rest; it comes from the clocks of the machines that wrote the record, so it
    alone would hold back every change written by a converter whose clock is behind the
    gateway's."""
    if change == current:
        return False
    if change.status in FINAL_STATUSES or change.attempts > current.attempts:
        return True
    same_attempt = (change.attempts, change.status) == (current.attempts, current.status)
    if same_attempt and change.progress_percent > current.progress_percent:
        return True
    return change.update_time.ToNanoseconds() >= current.update_time.ToNanoseconds()


def _log_unsent(sent: concurrent.futures.Future[None]) -> None:
    if not sent.cancelled() and (exc := sent.exception()) is not None:
        log.info("job change not announced; watchers read it later", error=repr(exc))


def _when(value: Any) -> str:
    """A stored time for a message, in UTC to the second."""
    return timestamp(value).ToDatetime(dt.UTC).isoformat(timespec="seconds")


# The HTTP status both edges give an error that carries it in this trailer (mp3mesh/shim/app.py,
# envoy/envoy.yaml.tmpl's Lua filter): grpc-gateway's x-http-code convention.
HTTP_CODE_KEY = "x-http-code"


async def _conflict(context: grpc.aio.ServicerContext, message: str) -> NoReturn:
    """FAILED_PRECONDITION for a job in a state the request does not apply to, HTTP 409
    at the edges (the table's 400 would say the request itself is malformed)."""
    context.set_trailing_metadata(((HTTP_CODE_KEY, "409"),))
    await abort(context, grpc.StatusCode.FAILED_PRECONDITION, message)


async def _object_id(context: grpc.aio.ServicerContext, value: str, what: str) -> ObjectId:
    if not value:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{what} is required")
    if message := too_long(what, value, MAX_ID_LENGTH):  # not echoed back
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{message}: not a valid id")
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
        relay: OutboxRelay,
        event_subscriber: JobEventSubscriber,
        *,
        max_upload_bytes: int,
        watch_poll: float,
        bounds: ClientBounds,
        resumable: ResumableUploads,
        retention_seconds: float = 24 * 3600.0,
    ) -> None:
        self.store = store
        self.resumable = resumable
        self.bounds = bounds
        self.relay = relay
        self.event_subscriber = event_subscriber
        self.max_upload_bytes = max_upload_bytes
        self.watch_poll = watch_poll
        self.keys = Keys(store.db, UPLOAD_MARKS)
        # How long a cancelled job is kept for a retry (then retention removes it).
        self.retention_seconds = retention_seconds

    async def Upload(
        self,
        request_iterator: AsyncIterator[files_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.UploadResponse:
        caller = current_caller()
        return await self._in_upload_slot(
            caller, context, lambda: self._upload(caller, request_iterator, context)
        )

    async def _in_upload_slot(
        self, caller: Caller, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]
    ) -> T:
        """``work`` in one of the caller's upload slots (Upload and WriteResumableUpload
        share them): RESOURCE_EXHAUSTED when all are taken, a refusal as its status."""
        try:
            with self.bounds.uploads.slot(caller.user_id):
                return await work()
        except TooMany as exc:
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)

    async def _upload(
        self,
        caller: Caller,
        request_iterator: AsyncIterator[files_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.UploadResponse:
        """Store the video, record its job, queue the conversion: all of it, or nothing.
        Under an idempotency key already used, the original job (mp3mesh/gateway/idempotency.py)."""
        job_id = ObjectId()
        tracing.set_job(str(job_id))
        try:
            key = key_from(context.invocation_metadata())
            original = await self.keys.reserve(caller.user_id, key, job_id) if key else None
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)
        if original is not None:
            return await self._replay(original, request_iterator, context)
        try:
            return await self._store_upload(caller, job_id, request_iterator, context)
        except BaseException:
            if key:
                await asyncio.shield(self.keys.release(caller.user_id, key, job_id))
            raise

    async def _replay(
        self,
        original: dict[str, Any],
        request_iterator: AsyncIterator[files_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.UploadResponse:
        """The upload was sent before under its key and recorded: its body is read and
        hashed, not stored; the same file answers the original job."""
        try:
            video = await receive_video(
                self.bounds.pace(aiter(request_iterator)),
                lambda _name, _type: Discard(),
                self.max_upload_bytes,
            )
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)
        if not same_upload(original, video.filename, video.sha256, video.options):
            await abort(
                context,
                grpc.StatusCode.ALREADY_EXISTS,
                f"this Idempotency-Key was already used for another upload (job"
                f" {original['_id']}, file {original.get('filename', '')!r}, its own"
                " conversion options); send a new key with a new upload",
            )
        UPLOADS.labels("repeated").inc()
        log.info("upload repeated under its idempotency key", job_id=str(original["_id"]))
        return files_pb2.UploadResponse(job=jobs.to_proto(original))

    async def _store_upload(
        self,
        caller: Caller,
        job_id: ObjectId,
        request_iterator: AsyncIterator[files_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.UploadResponse:
        """The upload's video stored and its job recorded and queued."""

        def open_video_file(filename: str, content_type: str) -> gridfs_io.AsyncFileWriter:
            return self.store.open_video_file(job_id, caller.user_id, filename, content_type)

        try:
            async with self.store.atomic_upload(job_id, caller.user_id):
                video = await receive_video(
                    self.bounds.pace(aiter(request_iterator)),
                    open_video_file,
                    self.max_upload_bytes,
                )
                job = _new_job(job_id, caller, video)
                await self._record_and_queue(job)
        except UploadRefused as refused:  # answered once nothing of it is left
            UPLOADS.labels("refused").inc()
            await abort(context, refused.code, refused.message)
        except BaseException:
            UPLOADS.labels("failed").inc()
            raise
        UPLOADS.labels("accepted").inc()
        log.info("video uploaded", job_id=str(job_id), size=video.size, user_id=caller.user_id)
        return files_pb2.UploadResponse(job=jobs.to_proto(job))

    async def _record_and_queue(
        self, job: dict[str, Any], insert: Callable[[dict[str, Any]], Awaitable[Any]] | None = None
    ) -> None:
        """Record the job with its announcement pending (the outbox), then publish it. If
        the broker does not confirm it, the upload still stands: the relay publishes it
        later (mp3mesh/gateway/relay.py). ``insert`` records it (default: FileStore.insert_job)."""
        insert = insert or self.store.insert_job
        self.relay.mark_pending(job)
        await insert(job)
        try:
            await self.relay.announce(job)
        except Exception as exc:
            log.warning(
                "broker did not confirm the job; the outbox relay will publish it",
                job_id=str(job["_id"]),
                error=repr(exc),
            )

    async def Download(
        self, request: files_pb2.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        caller = current_caller()
        mp3_id = await _object_id(context, request.file_id or request.fid, "file id")
        files_doc = await self.store.mp3(caller.user_id, mp3_id)
        if files_doc is None:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, await self._missing_mp3(caller.user_id, mp3_id)
            )
        if request.read_offset < 0 or request.read_limit < 0:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "read_offset and read_limit must not be negative",
            )
        length = int(files_doc["length"])
        entity = ((ETAG_KEY, mp3_etag(files_doc)), (SIZE_KEY, str(length)))
        await context.send_initial_metadata(entity)
        # In the trailers too: a call that ends before any bytes (an offset at or past the
        # end) can reach the caller as trailers only, without the initial metadata.
        context.set_trailing_metadata(entity)
        if request.read_offset > length:
            await abort(
                context,
                grpc.StatusCode.OUT_OF_RANGE,
                f"read_offset {request.read_offset} is past the end of the {length} byte file",
            )
        stop = request.read_offset + request.read_limit if request.read_limit else None
        async for window in self.store.mp3_windows(files_doc, request.read_offset, stop):
            for message, length in http_bodies(window, MP3_BODY, DOWNLOAD_MESSAGE_BYTES):
                yield message  # an encoded HttpBody (mp3mesh/gateway/download_wire.py)
                DOWNLOAD_BYTES.inc(length)

    async def GetJob(
        self, request: files_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.GetJobResponse:
        job = await self._job(context, request.job_id or request.fid)
        full = request.view == files_pb2.JOB_VIEW_FULL
        return files_pb2.GetJobResponse(job=jobs.to_proto(job, full=full))

    async def CancelJob(
        self, request: files_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.CancelJobResponse:
        """CANCELLED, conditioned on the state read (a converter's claim or finish landing
        in between is read again)."""
        for _ in range(CONTROL_TRIES):
            job = await self._job(context, request.job_id)
            if job["status"] == jobs.CANCELLED:
                return files_pb2.CancelJobResponse(job=jobs.to_proto(job))
            if job["status"] not in jobs.CANCELLABLE:
                await _conflict(
                    context,
                    f"job {job['_id']} already ended ({job['status']}); only a QUEUED or"
                    " PROCESSING job can be cancelled",
                )
            pending: dict[str, Any] = {}
            self.relay.mark_pending(pending, finished=True)
            change = jobs.cancel(
                job, expires_at=time.time() + self.retention_seconds, announce=pending
            )
            if (cancelled := await self.store.apply(change)) is not None:
                log.info("job cancelled", job_id=str(job["_id"]), was=job["status"])
                self._changed(cancelled)
                await self._announce(cancelled, "the cancel")
                return files_pb2.CancelJobResponse(job=jobs.to_proto(cancelled))
        await abort(context, grpc.StatusCode.ABORTED, BUSY)

    async def DeleteJob(
        self, request: files_pb2.DeleteJobRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.DeleteJobResponse:
        job = await self._job(context, request.job_id)
        await self.store.delete_job(job)
        log.info("job deleted", job_id=str(job["_id"]), was=job["status"])
        return files_pb2.DeleteJobResponse(job_id=str(job["_id"]))

    async def RetryJob(
        self, request: files_pb2.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.RetryJobResponse:
        """QUEUED again with its VideoUploaded through the outbox, as an upload is."""
        job = await self._job(context, request.job_id)
        if job["status"] not in jobs.RETRYABLE:
            await _conflict(
                context,
                f"job {job['_id']} is {job['status']}; only a FAILED or CANCELLED job can"
                " be retried",
            )
        if job.get("expired_at") or not await self.store.has_video(job["_id"]):
            await _conflict(
                context,
                f"job {job['_id']} cannot be retried: its video is no longer stored (files"
                " are kept for a limited time); upload the video again",
            )
        if self.relay.finished_pending(job):
            # The retry's VideoUploaded replaces the mark: the end it announces (mail,
            # webhooks) goes out first, or the retry waits.
            try:
                await self.relay.announce(job)
            except Exception:
                await abort(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    f"job {job['_id']} cannot be retried yet: the news that it ended is"
                    " still being sent; try again in a minute",
                )
        pending: dict[str, Any] = {}
        self.relay.mark_pending(pending)
        retried = await self.store.apply(jobs.retry(job, announce=pending))
        if retried is None:
            await abort(context, grpc.StatusCode.ABORTED, BUSY)
        await self._announce(retried, "the retry")
        log.info("job retried", job_id=str(job["_id"]))
        self._changed(retried)
        return files_pb2.RetryJobResponse(job=jobs.to_proto(retried))

    async def _announce(self, job: dict[str, Any], what: str) -> None:
        """Publish the announcement a control left pending on ``job``; if the broker does
        not confirm it, the outbox relay publishes it later."""
        try:
            await self.relay.announce(job)
        except Exception as exc:
            log.warning(f"broker did not confirm {what}; the outbox relay will publish it",
                        job_id=str(job["_id"]), error=repr(exc))  # fmt: skip

    async def WatchJob(
        self, request: files_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[files_pb2.WatchJobResponse]:
        try:
            with self.bounds.watches.slot(current_caller().user_id):
                async for reply in self._watch(request, context):
                    yield reply
        except TooMany as exc:
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def _watch(
        self, request: files_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[files_pb2.WatchJobResponse]:
        """The job now, then each change as the converter pushes it (mp3mesh/gateway/job_events.py);
        the record is read again when no change came for ``watch_poll`` seconds."""
        job_oid = await _object_id(context, request.job_id, "job id")
        with self.event_subscriber.watching(
            str(job_oid)
        ) as changes:  # before the read: none missed
            current = jobs.to_proto(await self._job(context, request.job_id))
            yield files_pb2.WatchJobResponse(job=current)
            while current.status not in FINAL_STATUSES:
                try:
                    change = await asyncio.wait_for(changes.get(), self.watch_poll)
                except TimeoutError:
                    change = None
                if change is None:
                    change = jobs.to_proto(await self._job(context, request.job_id))
                if _newer(change, current):
                    current = change
                    yield files_pb2.WatchJobResponse(job=current)

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

    async def ListPresets(
        self, request: files_pb2.ListPresetsRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.ListPresetsResponse:
        return files_pb2.ListPresetsResponse(presets=options.preset_protos())

    async def StartResumableUpload(
        self, request: files_pb2.StartResumableUploadRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.StartResumableUploadResponse:
        caller = current_caller()
        try:
            key = key_from(context.invocation_metadata())
            record = await self._start_resumable(caller, key, request)
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)
        return files_pb2.StartResumableUploadResponse(upload=upload_proto(record))

    async def _start_resumable(
        self, caller: Caller, key: str, request: files_pb2.StartResumableUploadRequest
    ) -> dict[str, Any]:
        """A new resumable upload; under an idempotency key already used, the upload the
        key names when declared alike (mp3mesh/gateway/idempotency.py)."""
        if not key:
            return await self.resumable.start(caller.user_id, caller.email, request)
        upload_id = ObjectId()
        for _ in range(3):
            held = await self.keys.hold(caller.user_id, key, upload_id)
            if held is None:
                try:
                    return await self.resumable.start(
                        caller.user_id, caller.email, request, upload_id
                    )
                except BaseException:
                    await asyncio.shield(self.keys.release(caller.user_id, key, upload_id))
                    raise
            record = await self.resumable.find(caller.user_id, held)
            if record is not None and same_resumable(record, request):
                log.info("resumable upload repeated under its idempotency key",
                         upload_id=str(held))  # fmt: skip
                return record
            if record is not None or await self.store.jobs.find_one({"_id": held}, {"_id": 1}):
                raise UploadRefused(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"this Idempotency-Key was already used for another upload ({held}); send"
                    " a new key with a new upload",
                )
            # Its upload expired or was cancelled, and made no job: the key is free again.
            await self.keys.release(caller.user_id, key, held)
        raise UploadRefused(
            grpc.StatusCode.ABORTED, "the Idempotency-Key is being used by another upload"
        )

    async def WriteResumableUpload(
        self,
        request_iterator: AsyncIterator[files_pb2.WriteResumableUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> files_pb2.WriteResumableUploadResponse:
        caller = current_caller()
        record = await self._in_upload_slot(
            caller, context, lambda: self._write_resumable(caller, request_iterator, context)
        )
        return files_pb2.WriteResumableUploadResponse(upload=upload_proto(record))

    async def _write_resumable(
        self,
        caller: Caller,
        request_iterator: AsyncIterator[files_pb2.WriteResumableUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> dict[str, Any]:
        """One write of a resumable upload: the upload's record after it."""
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise UploadRefused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the write is empty: send upload_id and write_offset first",
            )
        upload_id = await _object_id(context, first.upload_id, "upload id")
        tracing.set_job(str(upload_id))
        return await self.resumable.write(
            caller.user_id,
            upload_id,
            first.write_offset,
            first.checksum_sha1,
            self._write_blocks(first, request_iterator),
            lambda full: self._complete(caller, full),
        )

    async def _write_blocks(
        self,
        first: files_pb2.WriteResumableUploadRequest,
        rest: AsyncIterator[files_pb2.WriteResumableUploadRequest],
    ) -> AsyncIterator[bytes]:
        """A write's bytes; refused when nothing comes for the upload idle time (the
        write ends there and keeps what it had)."""
        if first.data:
            yield first.data
        while True:
            try:
                request = await asyncio.wait_for(anext(rest, None), self.bounds.idle_seconds)
            except TimeoutError:
                raise UploadRefused(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"the write sent nothing for {self.bounds.idle_seconds:g} s; what came"
                    " before is kept: ask for the committed size and write from there",
                ) from None
            if request is None:
                return
            if request.upload_id or request.write_offset or request.checksum_sha1:
                raise UploadRefused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "upload_id, write_offset and checksum_sha1 come in the first message only",
                )
            if request.data:
                yield request.data

    async def _complete(self, caller: Caller, record: dict[str, Any]) -> dict[str, Any]:
        """Once the last byte is in (called by the store while it holds the upload): the
        video sealed, its job recorded and queued as an Upload's is, and the upload marked
        complete. Idempotent, so a completion cut short (the gateway died) is done by the
        next write or query."""
        upload_id = record["_id"]
        video = await self.resumable.seal(record)
        if await self.store.jobs.find_one({"_id": upload_id}, {"_id": 1}) is None:
            owner = Caller(user_id=record["owner_id"], email=record["owner_email"])
            await self._record_and_queue(
                _new_job(upload_id, owner, video), insert=self.store.jobs.insert_one
            )
            UPLOADS.labels("accepted").inc()
            log.info("video uploaded (resumable)", job_id=str(upload_id), size=video.size,
                     user_id=caller.user_id)  # fmt: skip
        return await self.resumable.mark_complete(upload_id)

    async def QueryResumableUpload(
        self, request: files_pb2.QueryResumableUploadRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.QueryResumableUploadResponse:
        caller = current_caller()
        upload_id = await _object_id(context, request.upload_id, "upload id")
        try:
            record = await self.resumable.complete(
                caller.user_id, upload_id, lambda full: self._complete(caller, full)
            )
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)
        return files_pb2.QueryResumableUploadResponse(upload=upload_proto(record))

    async def CancelResumableUpload(
        self, request: files_pb2.CancelResumableUploadRequest, context: grpc.aio.ServicerContext
    ) -> files_pb2.CancelResumableUploadResponse:
        caller = current_caller()
        upload_id = await _object_id(context, request.upload_id, "upload id")
        try:
            await self.resumable.cancel(caller.user_id, upload_id)
        except UploadRefused as refused:
            await abort(context, refused.code, refused.message)
        return files_pb2.CancelResumableUploadResponse()

    def _changed(self, job: dict[str, Any]) -> None:
        """Tell the job's watchers (on every gateway) of its owner's change at once, as the
        converter tells them of its own; best effort: they also read the record."""
        notice = jobs.job_changed(job)
        try:
            sent = self.relay.publisher.publish_event(
                self.event_subscriber.exchange, notice.job.id, notice
            )
        except Exception as exc:  # the publisher is not running: the watchers poll
            log.info("job change not announced; watchers read it later", error=repr(exc))
            return
        sent.add_done_callback(_log_unsent)

    async def _missing_mp3(self, owner_id: str, mp3_id: ObjectId) -> str:
        """Why there is no such MP3: it expired (retention), or there never was one."""
        job = await self.store.job_of_mp3(owner_id, mp3_id)
        if job is not None and job.get("expired_at"):
            when = dt.datetime.fromtimestamp(job["expired_at"], dt.UTC).isoformat(
                timespec="seconds"
            )
            return (
                f"MP3 {mp3_id} expired at {when}: files are kept for a limited time after"
                " conversion; upload the video again"
            )
        if (stone := await self.store.tombstone_of_mp3(owner_id, mp3_id)) is not None:
            return f"MP3 {mp3_id} was deleted with its job at {_when(stone['deleted'])}"
        return f"no MP3 with id {mp3_id}"

    async def _job(self, context: grpc.aio.ServicerContext, job_id: str) -> dict[str, Any]:
        job_oid = await _object_id(context, job_id, "job id")
        owner_id = current_caller().user_id
        job = await self.store.job(owner_id, job_oid)
        if job is None:
            stone = await self.store.tombstone(owner_id, job_oid)
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"job {job_oid} was deleted at {_when(stone['deleted'])}"
                if stone
                else f"no job with id {job_oid}",
            )
        return job
