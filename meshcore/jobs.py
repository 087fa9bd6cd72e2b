"""The job record: one document per conversion in the ``jobs`` collection.

The gateway creates it and reads it, the converter moves it along; both use these names
and this mapping to the ``mp3mesh.files.v1.Job`` message, so the record has one shape.
The job's ``_id`` is the video's GridFS file id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from mp3mesh.files.v1 import files_pb2

COLLECTION = "jobs"

QUEUED = "QUEUED"
PROCESSING = "PROCESSING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
FINAL = (SUCCEEDED, FAILED)

_STATUS = {
    QUEUED: files_pb2.JOB_STATUS_QUEUED,
    PROCESSING: files_pb2.JOB_STATUS_PROCESSING,
    SUCCEEDED: files_pb2.JOB_STATUS_SUCCEEDED,
    FAILED: files_pb2.JOB_STATUS_FAILED,
}


def status_to_proto(status: str) -> files_pb2.JobStatus:
    return _STATUS.get(status, files_pb2.JOB_STATUS_UNSPECIFIED)


def now() -> dt.datetime:
    # MongoDB keeps milliseconds; truncate so what we hold equals what we read back.
    t = dt.datetime.now(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def timestamp(value: Any) -> Timestamp:
    """A stored time as a protobuf Timestamp. MongoDB gives back naive UTC datetimes; the
    nx-27017 stand-in gives back ISO strings for datetimes set by find_one_and_update."""
    ts = Timestamp()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return ts


def new_job(
    *, video_id: Any, owner_id: str, owner_email: str, filename: str, size: int, sha256: str
) -> dict[str, Any]:
    t = now()
    return {
        "_id": video_id,
        "owner_id": owner_id,
        "owner_email": owner_email,
        "filename": filename,
        "video_size": size,
        "video_sha256": sha256,
        "status": QUEUED,
        "progress": 0,
        "error": "",
        "attempts": 0,
        "mp3_file_id": None,
        "duration": 0.0,
        "mp3_size": 0,
        "created": t,
        "updated": t,
    }


def to_proto(doc: dict[str, Any]) -> files_pb2.Job:
    return files_pb2.Job(
        id=str(doc["_id"]),
        owner_id=doc["owner_id"],
        video_file_id=str(doc["_id"]),
        mp3_file_id=str(doc["mp3_file_id"]) if doc.get("mp3_file_id") else "",
        status=status_to_proto(doc["status"]),
        progress_percent=int(doc.get("progress", 0)),
        error=doc.get("error", ""),
        attempts=int(doc.get("attempts", 0)),
        create_time=timestamp(doc.get("created")),
        update_time=timestamp(doc.get("updated")),
        filename=doc.get("filename", ""),
        video_size_bytes=int(doc.get("video_size", 0)),
        video_sha256=doc.get("video_sha256", ""),
        duration_seconds=float(doc.get("duration", 0.0)),
        mp3_size_bytes=int(doc.get("mp3_size", 0)),
    )
