"""Resumable uploads: a video written in several calls, each at the committed offset.

This is google.bytestream.ByteStream's write model (``write_offset``, the committed size
asked with a query) under the tus 1.0 protocol the edges speak (mp3mesh/shim/tus.py).

The bytes are stored as they arrive, in parts: each part is a GridFS file of at most
``PART_BYTES`` (about 4 MiB) in the ``upload_parts`` bucket. A write closes a part when it
is full and when the write ends, however it ends (a client gone included), and records it:
``committed`` (the bytes in recorded parts) is where the next write starts. Parts are only
ever written whole and removed whole, never changed: GridFS chunks are not rewritten in
place (and the MongoDB stand-in cannot), so a write cut mid-chunk needs no chunk edited.
When the last byte is in, the parts are copied in order into the video's GridFS file (id =
the upload id = the job id), hashed on the way, and removed: the video is an ordinary
GridFS file, the converter reads it as any other.

One record per upload (``resumable_uploads``): owner, declared metadata, the conversion
options (checked and resolved when the upload starts, so a bad one is refused before a
byte is sent; the job takes them from here), ``total``, ``committed``, ``parts`` (ids and
lengths, in order), ``pending`` (parts being written, not yet recorded: what a write that
died leaves, removed by the next one), ``expires_at`` (moved by every write) and the
writer holding it, if any. A write holds the upload (a writer token with a lease renewed
by a heartbeat), so two writes never interleave, and its commits are conditioned on that
token. With a checksum, the write's parts are recorded only if all its bytes match, else
removed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from mp3mesh.core import gridfs_io, options
from mp3mesh.core.timestamps import timestamp
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.upload import ReceivedVideo, UploadRefused, check_declared, name_and_type

log = structlog.get_logger()

# Turns a complete upload's record into a job: seal, record, queue (FileServicer._complete).
Complete = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

COLLECTION = "resumable_uploads"
# A write holds its upload for this long without a heartbeat; a heartbeat every quarter.
WRITER_LEASE_SECONDS = 30.0
# Other metadata kept with an upload (tus Upload-Metadata keys), bounded.
MAX_EXTRA_KEYS = 32
MAX_EXTRA_KEY_LENGTH = 64
MAX_EXTRA_VALUE_BYTES = 1024
# Stored before committing, unless the write carries a checksum (then all at the end).
SHA1_BYTES = 20
# A part: one window of GridFS chunks, stored with one insert.
PART_BYTES = gridfs_io.WINDOW * gridfs_io.CHUNK_SIZE
PARTS = "upload_parts"


def refused(code: grpc.StatusCode, message: str) -> UploadRefused:
    return UploadRefused(code, message)


def not_found(upload_id: ObjectId) -> UploadRefused:
    return refused(
        grpc.StatusCode.NOT_FOUND,
        f"no upload with id {upload_id}: it never existed, was deleted, or expired"
        " (an upload no write touched for a while is removed); start a new one",
    )


def to_proto(record: dict[str, Any]) -> files_pb2.ResumableUpload:
    upload = files_pb2.ResumableUpload(
        upload_id=str(record["_id"]),
        committed_size=int(record["committed"]),
        total_size=int(record["total"]),
        expire_time=timestamp(_datetime(record["expires_at"])),
        job_id=str(record["_id"]) if record.get("completed") else "",
        metadata=files_pb2.UploadMetadata(
            filename=record["filename"],
            content_type=record["content_type"],
            size_bytes=int(record["total"]),
            sha256=record.get("sha256", ""),
            options=options.from_record(record.get("options")),
        ),
    )
    upload.extra_metadata.update(record.get("extra") or {})
    return upload


def _datetime(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC)


class ResumableUploads:
    """The uploads' records and their bytes in the videos bucket."""

    def __init__(
        self,
        db: AsyncDatabase[Any],
        *,
        max_bytes: int,
        ttl: float,
        clock: Callable[[], float] = time.time,
        writer_lease: float = WRITER_LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.records = db[COLLECTION]
        self.chunks = db[f"{gridfs_io.VIDEOS}.chunks"]
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self.writer_lease = writer_lease

    async def ensure_indexes(self) -> None:
        await self.records.create_index("expires_at")

    async def start(
        self,
        owner_id: str,
        owner_email: str,
        request: files_pb2.StartResumableUploadRequest,
        upload_id: ObjectId | None = None,
    ) -> dict[str, Any]:
        """A new upload's record (nothing stored yet), or UploadRefused saying why not.
        ``upload_id``: the id an idempotency key was reserved for (default: a new one)."""
        filename, content_type = name_and_type(files_pb2.UploadRequest(metadata=request.metadata))
        total = request.total_size
        if total <= 0:
            raise refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "total_size must be more than 0: a video has bytes",
            )
        if total > self.max_bytes:
            raise refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"upload is larger than the {self.max_bytes} byte limit",
            )
        extra = dict(request.extra_metadata)
        _check_extra(extra)
        try:  # kept resolved, as an Upload's job keeps them; seal gives them to the job
            resolved = options.resolve(request.metadata.options)
        except options.OptionError as exc:
            raise refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        record = {
            "_id": upload_id or ObjectId(),
            "owner_id": owner_id,
            "owner_email": owner_email,
            "filename": filename,
            "content_type": content_type,
            "sha256": request.metadata.sha256.lower(),
            "extra": extra,
            "options": options.to_record(resolved),
            "total": total,
            "committed": 0,
            "parts": [],
            "pending": [],
            "completed": False,
            "expires_at": self.clock() + self.ttl,
            "writer": None,
            "writer_until": 0.0,
        }
        await self.records.insert_one(record)
        log.info("resumable upload started", upload_id=str(record["_id"]), total=total)
        return record

    async def find(self, owner_id: str, upload_id: ObjectId) -> dict[str, Any] | None:
        """The caller's live upload, or None (an expired one too)."""
        record = await self.records.find_one({"_id": upload_id, "owner_id": owner_id})
        if record is None or float(record["expires_at"]) <= self.clock():
            return None
        return record

    async def get(self, owner_id: str, upload_id: ObjectId) -> dict[str, Any]:
        """The caller's live upload, or NOT_FOUND (an expired one too, before housekeeping
        removes it)."""
        record = await self.records.find_one({"_id": upload_id, "owner_id": owner_id})
        if record is None or float(record["expires_at"]) <= self.clock():
            raise not_found(upload_id)
        return record

    async def write(
        self,
        owner_id: str,
        upload_id: ObjectId,
        offset: int,
        checksum_sha1: bytes,
        blocks: AsyncIterator[bytes],
        complete: Complete,
    ) -> dict[str, Any]:
        """Append ``blocks`` at ``offset``; the record after the write, and after
        ``complete`` if the write brought the last byte (run while the write holds the
        upload, so one completion runs at a time).

        Without a checksum, each part is recorded once stored, and so is the last one,
        however the write ends (a client gone included): a resumed write starts there.
        With one, nothing is recorded unless all of the write's bytes match it.
        """
        if checksum_sha1 and len(checksum_sha1) != SHA1_BYTES:
            raise refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "checksum_sha1 must be the 20 bytes of a SHA-1 digest",
            )
        record, token = await self._hold(owner_id, upload_id)
        heartbeat = asyncio.create_task(self._heartbeat(upload_id, token))
        cleanups: list[asyncio.Future[Any]] = []
        try:
            record = await self._append(record, token, offset, checksum_sha1, blocks, cleanups)
            return await self._complete_held(record, complete)
        finally:
            heartbeat.cancel()
            # After the write's own cleanup (which records parts as this writer), shielded:
            # a client gone cancels the call, not this.
            await asyncio.shield(self._release(upload_id, token, cleanups))

    async def complete(
        self, owner_id: str, upload_id: ObjectId, complete: Complete
    ) -> dict[str, Any]:
        """The caller's upload, completed first if all its bytes are in and no write holds
        it (one whose completion was cut short: the gateway stopped)."""
        record = await self.get(owner_id, upload_id)
        if record.get("completed") or int(record["committed"]) != int(record["total"]):
            return record
        try:
            record, token = await self._hold(owner_id, upload_id)
        except UploadRefused as refusal:
            if refusal.code == grpc.StatusCode.ABORTED:
                return record  # the write holding it completes it
            raise
        heartbeat = asyncio.create_task(self._heartbeat(upload_id, token))
        try:
            return await self._complete_held(record, complete)
        finally:
            heartbeat.cancel()
            await asyncio.shield(self._release(upload_id, token, []))

    @staticmethod
    async def _complete_held(record: dict[str, Any], complete: Complete) -> dict[str, Any]:
        if record.get("completed") or int(record["committed"]) != int(record["total"]):
            return record
        return await complete(record)

    async def _release(
        self, upload_id: ObjectId, token: str, cleanups: list[asyncio.Future[Any]]
    ) -> None:
        await asyncio.gather(*cleanups, return_exceptions=True)
        await self.records.update_one(
            {"_id": upload_id, "writer": token}, {"$set": {"writer": None, "writer_until": 0.0}}
        )

    async def _append(
        self,
        record: dict[str, Any],
        token: str,
        offset: int,
        checksum_sha1: bytes,
        blocks: AsyncIterator[bytes],
        cleanups: list[asyncio.Future[Any]],
    ) -> dict[str, Any]:
        upload_id, committed, total = record["_id"], int(record["committed"]), int(record["total"])
        if record.get("completed") or committed == total:
            if offset == total:
                return record  # nothing to add; the caller completes it if need be
            raise refused(
                grpc.StatusCode.ABORTED,
                f"upload {upload_id} already has all its {total} bytes",
            )
        if offset != committed:
            raise refused(
                grpc.StatusCode.ABORTED,
                f"write_offset {offset} is not where the upload is: {committed} bytes are"
                " committed; write from there",
            )
        write = _Write(self, record, token)
        digest = hashlib.sha1(usedforsecurity=False) if checksum_sha1 else None
        try:
            async for block in blocks:
                if write.end + len(block) > total:
                    raise refused(
                        grpc.StatusCode.OUT_OF_RANGE,
                        f"the write goes past the upload's declared {total} bytes",
                    )
                if digest is not None:
                    digest.update(block)
                await write.feed(block, record_parts=digest is None)
            if digest is not None and digest.digest() != checksum_sha1:
                raise refused(
                    grpc.StatusCode.DATA_LOSS,
                    "the bytes sent do not match their checksum (SHA-1"
                    f" {base64.b64encode(checksum_sha1).decode()}); nothing of them was"
                    " kept: send them again",
                )
        except BaseException:
            # Shielded: a client gone cancels the call, not this.
            cleanup = asyncio.ensure_future(
                write.abandon() if digest is not None else write.finish()
            )
            cleanups.append(cleanup)
            await asyncio.shield(cleanup)
            raise
        return await write.finish()

    async def _hold(self, owner_id: str, upload_id: ObjectId) -> tuple[dict[str, Any], str]:
        """Take the upload for one write (ABORTED if another write holds it), after
        removing the parts a write that died left unrecorded."""
        token = secrets.token_hex(8)
        now = self.clock()
        record = await self.records.find_one_and_update(
            {
                "_id": upload_id,
                "owner_id": owner_id,
                "expires_at": {"$gt": now},
                "writer_until": {"$lt": now},  # no write holds it (mp3mesh/core/nx27017.py)
            },
            {"$set": {"writer": token, "writer_until": now + self.writer_lease}},
            return_document=ReturnDocument.AFTER,
        )
        if record is None:
            await self.get(owner_id, upload_id)  # NOT_FOUND if that is why
            raise refused(
                grpc.StatusCode.ABORTED,
                f"another write to upload {upload_id} is in progress; ask for the committed"
                " size and write from there once it ended",
            )
        for part in record.get("pending") or []:
            await gridfs_io.adiscard(self.db, PARTS, part)
        if record.get("pending"):
            record = await self._update(upload_id, token, {"pending": []})
        return record, token

    async def _update(
        self, upload_id: ObjectId, token: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Set ``fields`` if this writer still holds the upload; the record after."""
        now = self.clock()
        record = await self.records.find_one_and_update(
            {"_id": upload_id, "writer": token},
            {"$set": {**fields, "writer_until": now + self.writer_lease}},
            return_document=ReturnDocument.AFTER,
        )
        if record is None:
            raise refused(
                grpc.StatusCode.ABORTED,
                f"upload {upload_id} was removed or taken over during the write",
            )
        return record

    async def _heartbeat(self, upload_id: ObjectId, token: str) -> None:
        while True:
            await asyncio.sleep(self.writer_lease / 4)
            await self.records.update_one(
                {"_id": upload_id, "writer": token},
                {"$set": {"writer_until": self.clock() + self.writer_lease}},
            )

    async def seal(self, record: dict[str, Any]) -> ReceivedVideo:
        """Make a complete upload's parts the video's GridFS file (idempotent): copied in
        order and hashed on the way, checked against what was declared, then the parts
        removed. Memory: one window."""
        upload_id, total = record["_id"], int(record["total"])
        files = self.db[f"{gridfs_io.VIDEOS}.files"]
        digest = hashlib.sha256()
        if (video_doc := await files.find_one({"_id": upload_id})) is not None:
            async for window in gridfs_io.aiter_windows(
                self.db, gridfs_io.VIDEOS, upload_id, video_doc
            ):
                for chunk in window:
                    digest.update(chunk)
        else:
            await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, upload_id)  # a copy cut short
            video = gridfs_io.AsyncFileWriter(
                self.db,
                gridfs_io.VIDEOS,
                upload_id,
                record["filename"],
                {"owner_id": record["owner_id"], "content_type": record["content_type"]},
            )
            for part in record["parts"]:
                async for window in gridfs_io.aiter_windows(self.db, PARTS, part["id"]):
                    for chunk in window:
                        digest.update(chunk)
                        await video.write(chunk)
            if video.length != total:
                raise gridfs_io.CorruptFile(
                    f"upload {upload_id}: its parts hold {video.length} of {total} bytes"
                )
            await video.close()
        received = ReceivedVideo(
            record["filename"],
            record["content_type"],
            total,
            digest.hexdigest(),
            options.resolve(options.from_record(record.get("options"))),
        )
        check_declared(
            received,
            files_pb2.UploadMetadata(size_bytes=total, sha256=record.get("sha256", "")),
        )
        for part in record["parts"]:
            await gridfs_io.adiscard(self.db, PARTS, part["id"])
        return received

    async def mark_complete(self, upload_id: ObjectId) -> dict[str, Any]:
        """The job is recorded: the upload says so (HEAD gives its id) until it expires."""
        record = await self.records.find_one_and_update(
            {"_id": upload_id},
            {"$set": {"completed": True, "expires_at": self.clock() + self.ttl}},
            return_document=ReturnDocument.AFTER,
        )
        if record is None:
            raise not_found(upload_id)
        return record

    async def cancel(self, owner_id: str, upload_id: ObjectId) -> None:
        """Remove the upload; its stored bytes too unless it became a job."""
        await self.get(owner_id, upload_id)
        now = self.clock()
        record = await self.records.find_one_and_delete(
            {
                "_id": upload_id,
                "owner_id": owner_id,
                "writer_until": {"$lt": now},  # no write holds it (mp3mesh/core/nx27017.py)
            }
        )
        if record is None:
            raise refused(
                grpc.StatusCode.ABORTED,
                f"a write to upload {upload_id} is in progress; delete it once it ended",
            )
        await self._discard_unless_job(record)
        log.info("resumable upload cancelled", upload_id=str(upload_id))

    async def expire(self, jobs: AsyncCollection[Any], batch: int = 100) -> int:
        """Housekeeping: remove the uploads past their expiry that no write holds, with
        their stored bytes unless they became a job. How many went."""
        now = self.clock()
        removed = 0
        due = self.records.find({"expires_at": {"$lt": now}}, {"expires_at": 1}).limit(batch)
        async for seen in due:
            record = await self.records.find_one_and_delete(
                {
                    "_id": seen["_id"],
                    "expires_at": seen["expires_at"],
                    "writer_until": {"$lt": now},  # no write holds it (mp3mesh/core/nx27017.py)
                }
            )
            if record is None:
                continue  # written to, or held, meanwhile
            chunks = await self._discard_unless_job(record, jobs)
            log.info("resumable upload expired; removed", upload_id=str(record["_id"]),
                     chunks=chunks)  # fmt: skip
            removed += 1
        return removed

    async def _discard_unless_job(
        self, record: dict[str, Any], jobs: AsyncCollection[Any] | None = None
    ) -> int:
        """Remove what an upload stored: its parts, recorded or not, and its video unless
        that became a job. How many chunks went."""
        removed = 0
        for part in [p["id"] for p in record.get("parts") or []] + list(
            record.get("pending") or []
        ):
            removed += await gridfs_io.adiscard(self.db, PARTS, part)
        jobs = self.db["jobs"] if jobs is None else jobs
        if await jobs.find_one({"_id": record["_id"]}, {"_id": 1}) is None:
            removed += await gridfs_io.adiscard(self.db, gridfs_io.VIDEOS, record["_id"])
        return removed


class _Write:
    """One write's parts: bytes buffered up to ``PART_BYTES``, then stored as a part
    (a GridFS file in ``PARTS``), registered as pending before its first chunk is
    stored, so a write that dies leaves nothing the next one does not find."""

    def __init__(self, uploads: ResumableUploads, record: dict[str, Any], token: str) -> None:
        self.uploads, self.token = uploads, token
        self.upload_id = record["_id"]
        self.parts: list[dict[str, Any]] = list(record.get("parts") or [])
        self.committed = int(record["committed"])
        self.unrecorded: list[dict[str, Any]] = []  # stored, not yet recorded
        self.buffer = bytearray()
        self.record = record

    @property
    def end(self) -> int:
        """Where the write is: recorded, stored and buffered bytes."""
        return self.committed + sum(p["length"] for p in self.unrecorded) + len(self.buffer)

    async def feed(self, data: bytes, *, record_parts: bool) -> None:
        self.buffer += data
        while len(self.buffer) >= PART_BYTES:
            await self._store(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]
            if record_parts:
                await self._record()

    async def finish(self) -> dict[str, Any]:
        """Store what is buffered and record every part stored; the record after."""
        if self.buffer:
            await self._store(bytes(self.buffer))
            self.buffer.clear()
        if self.unrecorded:
            await self._record()
        return self.record

    async def abandon(self) -> None:
        """Remove the parts this write stored without recording them."""
        for part in self.unrecorded:
            await gridfs_io.adiscard(self.uploads.db, PARTS, part["id"])
        self.unrecorded.clear()
        self.record = await self.uploads._update(self.upload_id, self.token, {"pending": []})

    async def _store(self, data: bytes) -> None:
        part_id = ObjectId()
        pending = [p["id"] for p in self.unrecorded] + [part_id]
        self.record = await self.uploads._update(self.upload_id, self.token, {"pending": pending})
        writer = gridfs_io.AsyncFileWriter(
            self.uploads.db, PARTS, part_id, "", {"upload_id": str(self.upload_id)}
        )
        await writer.write(data)
        await writer.close()
        self.unrecorded.append({"id": part_id, "length": len(data)})

    async def _record(self) -> None:
        self.parts += self.unrecorded
        self.committed += sum(p["length"] for p in self.unrecorded)
        self.unrecorded = []
        self.record = await self.uploads._update(
            self.upload_id,
            self.token,
            {
                "parts": self.parts,
                "committed": self.committed,
                "pending": [],
                "expires_at": self.uploads.clock() + self.uploads.ttl,
            },
        )


def _check_extra(extra: dict[str, str]) -> None:
    if len(extra) > MAX_EXTRA_KEYS:
        raise refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"at most {MAX_EXTRA_KEYS} extra_metadata keys are kept; {len(extra)} were sent",
        )
    for key, value in extra.items():
        if not key or len(key) > MAX_EXTRA_KEY_LENGTH:
            raise refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"an extra_metadata key must have 1 to {MAX_EXTRA_KEY_LENGTH} characters",
            )
        if len(value.encode()) > MAX_EXTRA_VALUE_BYTES:
            raise refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"extra_metadata {key!r} is longer than {MAX_EXTRA_VALUE_BYTES} bytes",
            )
