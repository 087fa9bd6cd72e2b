"""Idempotent uploads: a client's key (gRPC metadata ``idempotency-key``, HTTP header
``Idempotency-Key`` on both edges) names one upload of one user for KEY_SECONDS.

A key is reserved (a document whose ``_id`` is the user and the key, so the store's
unique ``_id`` settles a race) before any byte is stored, pointing at the job id the
upload will get. Sent again:

- its job was recorded (the first answer may have been lost after the commit): the body
  is read again, hashed and not stored, and the original job answers if it is the same
  file (name and SHA-256) with the same conversion options; a different body or other
  options are ALREADY_EXISTS (HTTP 409), as Stripe answers a key reused with other
  parameters;
- its upload is still being received: ABORTED (HTTP 409), try again once it ends;
- its upload failed or its gateway died (no job, no upload in progress): the key is taken
  over by this upload.

A resumable upload's creation (StartResumableUpload, tus's ``POST /files/``) takes a key
too: sent again, it answers the upload the key names if that upload was declared alike
(file name, size, options), so a client whose first answer was lost gets the same upload
URL and no second upload is opened; declared otherwise, ALREADY_EXISTS (HTTP 409).

Keys expire after KEY_SECONDS: a TTL index on ``created`` removes them on MongoDB, and a
key older than that is treated as absent wherever it is still found.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mp3mesh.core import jobs
from mp3mesh.core import options as conversion_options
from mp3mesh.core.nx27017 import stored_datetime
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.upload import UploadRefused, name_and_type

KEYS = "idempotency_keys"
KEY_SECONDS = 24 * 3600
METADATA_KEY = "idempotency-key"
MAX_KEY_LENGTH = 255


def key_from(metadata: Any) -> str:
    """The call's idempotency key, or "" for none; over the bound is INVALID_ARGUMENT."""
    key = next((str(v) for k, v in metadata or () if k == METADATA_KEY), "").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise UploadRefused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters",
        )
    return key


class Keys:
    def __init__(self, db: AsyncDatabase[Any], uploads: str) -> None:
        self.keys = db[KEYS]
        self.db = db
        self.uploads = uploads

    async def ensure_indexes(self) -> None:
        await self.keys.create_index("created", expireAfterSeconds=KEY_SECONDS)

    async def reserve(self, owner_id: str, key: str, job_id: ObjectId) -> dict[str, Any] | None:
        """Reserve ``key`` for the upload ``job_id``; None once reserved, else the job the
        key already answers with (recorded), ABORTED if its upload is still running."""
        for _ in range(3):
            held = await self.hold(owner_id, key, job_id)
            if held is None:
                return None
            job = await self.db[jobs.COLLECTION].find_one(jobs.owned(owner_id, held))
            if job is not None:
                return job
            if await self.db[self.uploads].find_one({"_id": held}) is not None:
                raise UploadRefused(
                    grpc.StatusCode.ABORTED,
                    "an upload with this Idempotency-Key is still being received;"
                    " send it again once that one has ended",
                )
            # Its upload ended without a job (failed, or its gateway died): taken over.
            await self.release(owner_id, key, held)
        raise UploadRefused(
            grpc.StatusCode.ABORTED, "the Idempotency-Key is being used by another upload"
        )

    async def hold(self, owner_id: str, key: str, upload_id: ObjectId) -> ObjectId | None:
        """Reserve ``key`` for ``upload_id`` (a job's, or a resumable upload's): None once
        reserved, else the id the key already names. An expired key is taken over."""
        # job_key: the id as text, for the conditions on it (the nx-27017 stand-in matches
        # ObjectIds only in _id).
        doc = {
            "_id": f"{owner_id}/{key}",
            "job_id": upload_id,
            "job_key": str(upload_id),
            "created": jobs.now(),
        }
        for _ in range(3):
            try:
                await self.keys.insert_one(doc)
                return None
            except DuplicateKeyError:
                pass
            held = await self.keys.find_one({"_id": doc["_id"]})
            if held is not None and _fresh(held):
                held_id: ObjectId = held["job_id"]
                return held_id
            if held is not None:  # expired: this upload takes the key over
                await self.keys.delete_one({"_id": doc["_id"], "job_key": str(held["job_id"])})
        raise UploadRefused(
            grpc.StatusCode.ABORTED, "the Idempotency-Key is being used by another upload"
        )

    async def release(self, owner_id: str, key: str, job_id: ObjectId) -> None:
        """The upload ``job_id`` failed: its key may be used again at once."""
        await self.keys.delete_one({"_id": f"{owner_id}/{key}", "job_key": str(job_id)})


def _fresh(held: dict[str, Any]) -> bool:
    created = stored_datetime(held.get("created"))
    if not isinstance(created, dt.datetime):
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - created).total_seconds() < KEY_SECONDS


def same_resumable(record: dict[str, Any], request: files_pb2.StartResumableUploadRequest) -> bool:
    """Whether a resumable upload created again under a key declares the upload the key
    names: the same file name, size and options."""
    filename, _ = name_and_type(files_pb2.UploadRequest(metadata=request.metadata))
    try:
        asked = conversion_options.to_record(conversion_options.resolve(request.metadata.options))
    except conversion_options.OptionError:
        return False
    return (
        record.get("filename") == filename
        and record.get("total") == request.total_size
        and record.get("options") == asked
    )


def same_upload(
    job: dict[str, Any],
    filename: str,
    sha256: str,
    options: files_pb2.ConversionOptions | None = None,
) -> bool:
    """Whether a body sent again under a key is the upload its job was made of: the same
    file under the same name, to be converted with the same options (resolved over their
    preset, as the job keeps them; both sides read back through the record's form, so a
    preset and the values it stands for compare alike)."""
    sent = conversion_options.to_record(options or files_pb2.ConversionOptions())
    kept = conversion_options.from_record(job.get("options"))
    return (
        job.get("video_sha256") == sha256
        and job.get("filename") == filename
        and kept == conversion_options.from_record(sent)
    )
