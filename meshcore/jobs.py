"""The job record: one document per conversion in the ``jobs`` collection.

The gateway creates it and reads it, the converter moves it along; both use these names,
and every message that carries a job is built from the record here (the API's
``mp3mesh.files.v1.Job``, the queue's ``VideoUploaded`` and ``JobFinished``), so the
record has one shape.

One id: the job's ``_id`` is also its video's GridFS file id. Code calls it ``job_id``;
the messages keep their wire names (``Job.id`` and ``video_file_id``, ``job_id``,
``fid``) for compatibility.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from meshcore.timestamps import timestamp
from mp3mesh.events.v1 import events_pb2
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


def new_job(
    *, job_id: Any, owner_id: str, owner_email: str, filename: str, size: int, sha256: str
) -> dict[str, Any]:
    """The record of a job whose video ``job_id`` was just stored, QUEUED."""
    t = now()
    return {
        "_id": job_id,
        "owner_id": owner_id,
        "owner_email": owner_email,
        "filename": filename,
        "video_size": size,
        "video_sha256": sha256,
        "status": QUEUED,
        "progress": 0,
        "error": "",
        "attempts": 0,
        # Until when (epoch seconds) a converter holds the job; 0: nobody does.
        "locked_until": 0,
        "mp3_file_id": None,
        "duration": 0.0,
        "mp3_size": 0,
        "created": t,
        "updated": t,
    }


def _mp3_id(doc: dict[str, Any]) -> str:
    return str(doc["mp3_file_id"]) if doc.get("mp3_file_id") else ""


def to_proto(doc: dict[str, Any]) -> files_pb2.Job:
    """The job as the API shows it (GetJob, WatchJob, ListJobs, Upload's answer)."""
    return files_pb2.Job(
        id=str(doc["_id"]),
        owner_id=doc["owner_id"],
        video_file_id=str(doc["_id"]),
        mp3_file_id=_mp3_id(doc),
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


def _announced(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields both queue messages carry: whose job it is and what it was called."""
    return {
        "job_id": str(doc["_id"]),
        "owner_id": doc["owner_id"],
        "owner_email": doc.get("owner_email", ""),
        "filename": doc.get("filename", ""),
    }


def video_uploaded(doc: dict[str, Any]) -> events_pb2.VideoUploaded:
    """The announcement of a new job to the converter (the `video` queue)."""
    return events_pb2.VideoUploaded(
        **_announced(doc),
        video_file_id=str(doc["_id"]),
        size_bytes=int(doc.get("video_size", 0)),
        upload_time=timestamp(doc.get("created")),
    )


def job_finished(doc: dict[str, Any]) -> events_pb2.JobFinished:
    """The announcement of a finished job to the notification service (the `mp3` queue)."""
    return events_pb2.JobFinished(
        **_announced(doc),
        status=status_to_proto(doc["status"]),
        mp3_file_id=_mp3_id(doc),
        error=doc.get("error", ""),
        duration_seconds=float(doc.get("duration", 0.0)),
        mp3_size_bytes=int(doc.get("mp3_size", 0)),
        finish_time=timestamp(doc.get("updated")),
    )


def job_changed(doc: dict[str, Any]) -> events_pb2.JobChanged:
    """The notice of a change to the job, for its watchers (the `job.events` exchange)."""
    return events_pb2.JobChanged(job=to_proto(doc))
