"""The job record: one document per conversion in the ``jobs`` collection.

The gateway creates it and reads it, the converter moves it along; both use these names,
and every message that carries a job is built from the record here (the API's
``mp3mesh.files.v1.Job``, the queue's ``VideoUploaded`` and ``JobFinished``), so the
record has one shape.

One id: the job's ``_id`` is also its video's GridFS file id. Code calls it ``job_id``;
the messages keep their wire names (``Job.id`` and ``video_file_id``, ``job_id``,
``fid``) for compatibility.

Every write to a record is one of the transitions below (pure functions returning a filter
and an update), and the sweeper's judgement of a lease is :class:`LeaseWatch`: what state
a job may be in, and who may move it on, is read here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mp3mesh.core import options as conversion_options
from mp3mesh.core import webhooks
from mp3mesh.core.nx27017 import pushed_documents, stored_datetime
from mp3mesh.core.timestamps import timestamp
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2

COLLECTION = "jobs"

QUEUED = "QUEUED"
PROCESSING = "PROCESSING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
# States no converter moves on: a job there ends its watches and keeps no claim.
FINAL = (SUCCEEDED, FAILED, CANCELLED)
# States its owner may retry from.
RETRYABLE = (FAILED, CANCELLED)

_STATUS = {
    QUEUED: files_pb2.JOB_STATUS_QUEUED,
    PROCESSING: files_pb2.JOB_STATUS_PROCESSING,
    SUCCEEDED: files_pb2.JOB_STATUS_SUCCEEDED,
    FAILED: files_pb2.JOB_STATUS_FAILED,
    CANCELLED: files_pb2.JOB_STATUS_CANCELLED,
}


def status_to_proto(status: str) -> files_pb2.JobStatus:
    return _STATUS.get(status, files_pb2.JOB_STATUS_UNSPECIFIED)


def now() -> dt.datetime:
    # MongoDB keeps milliseconds; truncate so what we hold equals what we read back.
    t = dt.datetime.now(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def new_job(
    *,
    job_id: Any,
    owner_id: str,
    owner_email: str,
    filename: str,
    size: int,
    sha256: str,
    options: files_pb2.ConversionOptions | None = None,
) -> dict[str, Any]:
    """The record of a job whose video ``job_id`` was just stored, QUEUED, to be
    converted with ``options`` (resolved over their preset: mp3mesh/core/options.py)."""
    t = now()
    return {
        "_id": job_id,
        "owner_id": owner_id,
        "owner_email": owner_email,
        "filename": filename,
        "video_size": size,
        "video_sha256": sha256,
        "options": conversion_options.to_record(options or files_pb2.ConversionOptions()),
        "status": QUEUED,
        "progress": 0,
        "error": "",
        "attempts": 0,
        # The holder's token, drawn anew by each claim; every write of the holder is
        # conditioned on it (fencing). None: nobody holds the job.
        "claim": None,
        # Bumped by the holder's every renewal: the sweeper watches it change.
        "renewals": 0,
        # How long the holder may go without renewing (its own setting), in seconds.
        "lease_seconds": 0,
        "mp3_file_id": None,
        "duration": 0.0,
        "mp3_size": 0,
        "created": t,
        "updated": t,
        # Since when the job waits for a converter: the upload, or the last retry.
        "queued_at": t,
    }


def _mp3_id(doc: dict[str, Any]) -> str:
    return str(doc["mp3_file_id"]) if doc.get("mp3_file_id") else ""


def to_proto(doc: dict[str, Any], *, full: bool = False) -> files_pb2.Job:
    """The job as the API shows it (GetJob, WatchJob, ListJobs, Upload's answer);
    ``full`` adds how it was done (GetJob's JOB_VIEW_FULL)."""
    job = files_pb2.Job(
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
        options=conversion_options.from_record(doc.get("options")),
        webhook_deliveries=webhooks.deliveries_to_proto(doc),
    )
    if full:
        _add_how_it_was_done(job, doc)
    return job


def _add_how_it_was_done(job: files_pb2.Job, doc: dict[str, Any]) -> None:
    """The probe, the ffmpeg command, the stage times and the attempts, from the record."""
    details = job.details
    details.SetInParent()
    if probe := doc.get("probe"):
        details.probe.CopyFrom(
            files_pb2.MediaProbe(
                container=probe.get("container", ""),
                duration_seconds=float(probe.get("duration", 0.0)),
                bit_rate_bps=int(probe.get("bit_rate", 0)),
                streams=[
                    files_pb2.MediaStream(
                        index=int(s.get("index", 0)),
                        type=s.get("type", ""),
                        codec=s.get("codec", ""),
                        sample_rate_hz=int(s.get("sample_rate", 0)),
                        channel_layout=s.get("channel_layout", ""),
                        bit_rate_bps=int(s.get("bit_rate", 0)),
                    )
                    for s in probe.get("streams", [])
                ],
            )
        )
    details.ffmpeg_args.extend(doc.get("ffmpeg_args") or [])
    stages = {**(doc.get("stages") or {}), "announce": doc.get("announce_seconds", 0.0)}
    details.stage_times.CopyFrom(
        files_pb2.StageTimes(**{f"{name}_seconds": float(stages.get(name, 0.0)) for name in STAGES})
    )
    ends = {end.get("token"): end for end in pushed_documents(doc.get("attempt_ends"))}
    for number, start in enumerate(pushed_documents(doc.get("attempt_starts")), 1):
        end = ends.get(start.get("token"), {})
        details.attempt_history.add(
            number=number,
            start_time=timestamp(start.get("at")),
            end_time=timestamp(end.get("at")) if end else None,
            outcome=end.get("outcome", "running" if doc.get("claim") == start.get("token")
                            and doc["status"] == PROCESSING else "taken over"),
            reason=end.get("reason", ""),
            converter=start.get("converter", ""),
        )  # fmt: skip


# The stages of a conversion whose times a job keeps (StageTimes).
STAGES = ("queued", "fetch", "convert", "store", "announce")


def queued_seconds(claimed: dict[str, Any]) -> float:
    """How long the job ``claimed`` (the record as its claim left it) waited for the
    claim, since its upload or its last retry (both times written by this module's
    ``now``; the gateway's and the converter's clocks, so a rough figure)."""
    start = stored_datetime(claimed.get("queued_at") or claimed.get("created"))
    end = stored_datetime(claimed.get("updated"))
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return 0.0
    return max((end - start).total_seconds(), 0.0)


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


# --- Transitions -------------------------------------------------------------------------
#
# Every write to a job record is one of these: a filter that matches the record only in the
# state the transition starts from, and the update that moves it on. They are pure (no
# I/O) so the services only apply them, and so a test can apply them to any store.
#
#   new ──▶ QUEUED ──claim──▶ PROCESSING ──succeed──▶ SUCCEEDED ──expire──▶ (deleted)
#             ▲  │               │  │  ╰──fail──────▶ FAILED ─────expire──▶ (deleted)
#             │  ╰──give_up──────┼──┼──────────────▶ FAILED
#             ╰──put_back────────╯  │   (the holder's own shutdown; release: a passing
#                                   │    failure, the attempt counted)
#             ╰──requeue_expired────╯   (the sweeper: the holder stopped renewing)
#   QUEUED ──announce_again──▶ QUEUED       (housekeeping: its announcement was lost)
#
# Its owner's controls (the gateway's CancelJob, RetryJob, DeleteJob):
#
#   QUEUED, PROCESSING ──cancel──▶ CANCELLED ──retry──▶ QUEUED   (cancel: JobFinished pending)
#   FAILED ─────────────────────────────────────retry──▶ QUEUED
#   any state ──delete──▶ (removed; a tombstone says so for a while)
#
# cancel and delete clear the claim, so a holder is fenced out as by a takeover; it
# notices within CANCEL_POLL_SECONDS (mp3mesh/converter/claim.py) and stops ffmpeg.
#
# A holder's writes (renew, progress, store, succeed, fail, put_back) carry its claim
# token in the filter: once the job was requeued and claimed again, the old holder's
# writes match nothing, and that is how it learns it lost the job.

# What the sweeper assumes of a record from before leases were recorded on it.
DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Change:
    """One transition of a job record: apply ``update`` where ``filter`` matches (with
    ``find_one_and_update`` or ``update_one``). Matching nothing means the record was not
    in the state the transition starts from."""

    filter: dict[str, Any]
    update: dict[str, Any]


def pending_announcement(queue: str, at: float, trace: dict[str, str]) -> dict[str, Any]:
    """The outbox mark: the record's message for ``queue`` (VideoUploaded for the video
    queue, JobFinished for the MP3 queue) is to be published; ``at`` is when it was last
    tried (epoch seconds), ``trace`` the trace the message joins when it goes out."""
    return {"announce_at": at, "announce_queue": queue, "trace_context": trace}


def _held(job_id: Any, token: str) -> dict[str, Any]:
    return {"_id": job_id, "claim": token, "status": PROCESSING}


def _attempt_end(token: Any, outcome: str, reason: str = "") -> dict[str, Any]:
    """The end of the attempt made under ``token``, for the job's attempt history."""
    return {"attempt_ends": {"token": token, "at": now(), "outcome": outcome, "reason": reason}}


def claim(
    job_id: Any, token: str, *, lease_seconds: float, progress: int, converter: str = ""
) -> Change:
    """A converter takes a QUEUED job under a new token. The VideoUploaded mark goes: the
    announcement did its work, whoever was still to publish it. The attempt's start goes
    into the job's history, with the converter's name."""
    return Change(
        {"_id": job_id, "status": QUEUED},
        {
            "$set": {
                "status": PROCESSING,
                "progress": progress,
                "claim": token,
                "lease_seconds": lease_seconds,
                "updated": now(),
            },
            "$inc": {"attempts": 1, "renewals": 1},
            "$unset": {"announce_at": "", "announce_queue": ""},
            "$push": {"attempt_starts": {"token": token, "at": now(), "converter": converter}},
        },
    )


def record_run(job_id: Any, token: str, *, probe: dict[str, Any], ffmpeg_args: list[str]) -> Change:
    """The holder probed the video and is about to run ffmpeg: what it found and the
    exact command, for the job's full view."""
    return Change(_held(job_id, token), {"$set": {"probe": probe, "ffmpeg_args": ffmpeg_args}})


def renew(job_id: Any, token: str) -> Change:
    """The holder is alive: one more renewal, for the sweeper to see."""
    return Change(_held(job_id, token), {"$inc": {"renewals": 1}})


def progress(job_id: Any, token: str, percent: int) -> Change:
    """The holder's percentage, forward only (so matching nothing is no sign of a lost
    job: the record may already say more)."""
    return Change(
        {**_held(job_id, token), "progress": {"$lt": percent}},
        {"$set": {"progress": percent, "updated": now()}},
    )


def store(job_id: Any, token: str, mp3_id: Any) -> Change:
    """The holder is about to write its MP3 under ``mp3_id``: noted first, so that what a
    crash in the middle leaves can be found."""
    return Change(_held(job_id, token), {"$set": {"mp3_pending_id": mp3_id}})


def _finish(
    status: str,
    expires_at: float,
    announce: dict[str, Any],
    *,
    ended: dict[str, Any] | None = None,
    stages: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    update: dict[str, Any] = {
        "$set": {
            "status": status,
            "updated": now(),
            "expires_at": expires_at,
            **({"stages": stages} if stages is not None else {}),
            **fields,
            **announce,
        },
        "$unset": {"mp3_pending_id": ""},
    }
    if ended is not None:
        update["$push"] = ended
    return update


def succeed(
    job_id: Any,
    token: str,
    *,
    mp3_id: Any,
    duration: float,
    size: int,
    expires_at: float,
    announce: dict[str, Any],
    stages: dict[str, float] | None = None,
) -> Change:
    """The holder's MP3 is stored: SUCCEEDED, with its JobFinished pending (``announce``,
    see :func:`pending_announcement`). Matches SUCCEEDED under the same token too, so a
    retry after a lost reply is harmless; never a job another holder finished."""
    fields = {
        "progress": 100,
        "mp3_file_id": mp3_id,
        # Download looks the job up by it once the MP3 expired. Workaround for the
        # nx-27017 stand-in, which matches ObjectIds only in _id: the id as text too.
        "mp3_key": str(mp3_id),
        "duration": duration,
        "mp3_size": size,
        "error": "",
    }
    return Change(
        {"_id": job_id, "claim": token, "status": {"$in": [PROCESSING, SUCCEEDED]}},
        _finish(
            SUCCEEDED,
            expires_at,
            announce,
            ended=_attempt_end(token, "succeeded"),
            stages=stages,
            **fields,
        ),
    )


def fail(
    job_id: Any,
    token: str,
    reason: str,
    *,
    expires_at: float,
    announce: dict[str, Any],
    stages: dict[str, float] | None = None,
    probe: dict[str, Any] | None = None,
) -> Change:
    """The holder gives the job up for good: FAILED with ``reason``, JobFinished pending.
    Like :func:`succeed`, repeatable by the same holder and by nobody else. ``probe``: what
    the holder's probe found, for a job refused before its ffmpeg ran (see
    :func:`record_run`)."""
    return Change(
        {"_id": job_id, "claim": token, "status": {"$in": [PROCESSING, FAILED]}},
        _finish(
            FAILED,
            expires_at,
            announce,
            ended=_attempt_end(token, "failed", reason),
            stages=stages,
            error=reason,
            **({"probe": probe} if probe is not None else {}),
        ),
    )


def give_up(job_id: Any, reason: str, *, expires_at: float, announce: dict[str, Any]) -> Change:
    """Its message is being dead-lettered and nobody holds the job: FAILED. A held job is
    left to its holder, or to the sweeper if the holder is gone."""
    return Change(
        {"_id": job_id, "status": QUEUED}, _finish(FAILED, expires_at, announce, error=reason)
    )


def release(job_id: Any, token: str, reason: str = "") -> Change:
    """The holder failed for a passing reason (ffmpeg killed, a store error): QUEUED again,
    the attempt counted, for the retried delivery of its message to claim at once."""
    return Change(
        _held(job_id, token),
        {
            "$set": {"status": QUEUED, "progress": 0, "claim": None, "updated": now()},
            "$unset": {"mp3_pending_id": ""},
            "$push": _attempt_end(token, "released", reason),
        },
    )


def put_back(job_id: Any, token: str) -> Change:
    """The holder is shutting down: QUEUED again, as if this attempt never started."""
    released = release(job_id, token)
    return Change(
        released.filter,
        {
            **released.update,
            "$inc": {"attempts": -1},
            "$push": _attempt_end(token, "put back", "its converter was shutting down"),
        },
    )


def requeue_expired(job_id: Any, token: str | None, renewals: int, queue: str) -> Change:
    """The sweeper saw the holder ``token`` stop at ``renewals`` for a whole lease: QUEUED
    with its VideoUploaded pending at once. Conditioned on what the sweeper saw, so a
    renewal that lands meanwhile keeps the job with its holder. The holder's partial MP3
    is left to the holder, which removes it if it comes back (only it knows whether it is
    still writing it)."""
    return Change(
        {"_id": job_id, "status": PROCESSING, "claim": token, "renewals": renewals},
        {
            "$set": {
                "status": QUEUED,
                "progress": 0,
                "claim": None,
                "updated": now(),
                "announce_queue": queue,
                "announce_at": 0,
            },
            "$unset": {"mp3_pending_id": ""},
            "$push": _attempt_end(token, "taken over", "its converter stopped renewing its lease"),
        },
    )


def announce_again(job_id: Any, renewals: int, queue: str) -> Change:
    """Housekeeping saw the job wait QUEUED with no announcement pending, unclaimed, for
    longer than any announcement takes (its message was lost, or its give-up failed): it
    is announced again. Conditioned on what housekeeping saw; a repeat is harmless (a
    claim takes a job once)."""
    return Change(
        {**unannounced_queued(), "_id": job_id, "renewals": renewals},
        {"$set": {"announce_queue": queue, "announce_at": 0}},
    )


def take_announcement(queues: Iterable[str], due_before: float, at: float) -> Change:
    """A relay takes one announcement pending since before ``due_before``: marked tried
    ``at``, so other relays leave it alone for a while."""
    return Change(
        {"announce_at": {"$lt": due_before}, "announce_queue": {"$in": list(queues)}},
        {"$set": {"announce_at": at}},
    )


def hold_announcement(job_id: Any, queue: str, at: float, now: float) -> Change:
    """The announcement tried ``at`` is still in the broker's hands (published, not yet
    confirmed: a memory alarm blocks the publisher, say): marked tried ``now``, so that no
    relay takes it and publishes it a second time while its confirm may still come."""
    return Change(
        {"_id": job_id, "announce_queue": queue, "announce_at": at},
        {"$set": {"announce_at": now}},
    )


def announced(job_id: Any, queue: str, at: float, *, took: float | None = None) -> Change:
    """The broker confirmed the announcement tried ``at``: the mark goes, unless a newer
    one replaced it meanwhile. ``took``: how long the publish waited for its confirm (the
    job's announce stage), if the caller timed it."""
    update: dict[str, Any] = {"$unset": {"announce_at": "", "announce_queue": ""}}
    if took is not None:
        update["$set"] = {"announce_seconds": took}
    return Change({"_id": job_id, "announce_queue": queue, "announce_at": at}, update)


def expire(job_id: Any, at: float) -> Change:
    """Retention: the job's files were deleted ``at``; the record stays a while, so a
    download can say the MP3 expired."""
    return Change({"_id": job_id}, {"$set": {"expired_at": at}})


def finished_by(record: dict[str, Any], token: str) -> bool:
    """Whether the holder ``token`` finished the job (a holder's transitions keep its
    token on the record once it reached a final state; cancel clears it)."""
    return record.get("claim") == token and record.get("status") in (SUCCEEDED, FAILED)


# --- The owner's controls ------------------------------------------------------------------
#
# The gateway reads the record, then applies one of these conditioned on what it read
# (status and claim): a converter's claim or finish landing in between makes it match
# nothing, and the gateway reads again.

CANCELLABLE = (QUEUED, PROCESSING)
CANCEL_REASON = "cancelled by its owner"


def cancel(seen: dict[str, Any], *, expires_at: float, announce: dict[str, Any]) -> Change:
    """Its owner cancels the job ``seen`` (QUEUED or PROCESSING): CANCELLED, the claim
    cleared (a holder's writes now match nothing: it stops ffmpeg and removes its partial
    MP3), kept until ``expires_at`` so that it can be retried. Its JobFinished is pending
    (``announce``, see :func:`pending_announcement`), for the owner's ``job.cancelled``
    webhooks; it replaces a VideoUploaded still pending, and the notification service
    sends no mail for it (a cancelled job is not mailed)."""
    update: dict[str, Any] = {
        "$set": {
            "status": CANCELLED,
            "claim": None,
            "progress": 0,
            "error": CANCEL_REASON,
            "updated": now(),
            "expires_at": expires_at,
            **announce,
        },
        "$unset": {"mp3_pending_id": ""},
    }
    if seen["status"] == PROCESSING:
        update["$push"] = _attempt_end(seen.get("claim"), "cancelled", CANCEL_REASON)
    return Change(
        {
            "_id": seen["_id"],
            "owner_id": seen["owner_id"],
            "status": seen["status"],
            "claim": seen.get("claim"),
        },
        update,
    )


def retry(seen: dict[str, Any], *, announce: dict[str, Any]) -> Change:
    """Its owner runs the FAILED or CANCELLED job ``seen`` again: QUEUED with its
    VideoUploaded pending (``announce``), the attempt count started over (the history
    keeps every attempt), no expiry while it waits. Refused once retention removed the
    job's files (``expired_at``)."""
    return Change(
        {
            "_id": seen["_id"],
            "owner_id": seen["owner_id"],
            "status": {"$in": list(RETRYABLE)},
            "expired_at": {"$exists": False},
        },
        {
            "$set": {
                "status": QUEUED,
                "progress": 0,
                "error": "",
                "attempts": 0,
                "claim": None,
                "queued_at": now(),
                "updated": now(),
                **announce,
            },
            "$unset": {"expires_at": "", "stages": "", "announce_seconds": ""},
        },
    )


# Deleted jobs leave a tombstone in this collection, removed after TOMBSTONE_SECONDS
# (a TTL index on ``deleted``), so reads can say the job was deleted rather than never was.
TOMBSTONES = "deleted_jobs"
TOMBSTONE_SECONDS = 7 * 24 * 3600


def tombstone(record: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a deleted job: whose it was, its MP3's id, when it went."""
    return {
        "_id": record["_id"],
        "owner_id": record["owner_id"],
        "mp3_key": _mp3_id(record) or None,
        "deleted": now(),
    }


def deletion(owner_id: str, job_id: Any) -> dict[str, Any]:
    """The record to delete: the owner's job, in any state (a holder is fenced out as by
    a cancel: its writes match nothing)."""
    return owned(owner_id, job_id)


# --- Queries -------------------------------------------------------------------------------

# One index per field the queries below (and the owner's listings) look jobs up by.
INDEXED = ("owner_id", "status", "announce_at", "expires_at", "expired_at", "mp3_key")
# The tombstones' lookups: by _id, and by the MP3's id for Download.
TOMBSTONES_INDEXED = ("mp3_key",)


def held() -> dict[str, Any]:
    """Jobs some converter holds (the sweeper watches their renewals)."""
    return {"status": PROCESSING}


def unannounced_queued() -> dict[str, Any]:
    """Jobs waiting for a converter with no announcement pending: their message is in the
    broker, or was lost."""
    return {"status": QUEUED, "announce_queue": {"$exists": False}}


def due_for_expiry(at: float) -> dict[str, Any]:
    return {"expires_at": {"$lt": at}, "expired_at": {"$exists": False}}


def expired_before(at: float) -> dict[str, Any]:
    """Records whose files were deleted before ``at``: they can go too."""
    return {"expired_at": {"$lt": at}}


def owned(owner_id: str, job_id: Any) -> dict[str, Any]:
    return {"_id": job_id, "owner_id": owner_id}


def owned_with_mp3(owner_id: str, mp3_id: Any) -> dict[str, Any]:
    return {"mp3_key": str(mp3_id), "owner_id": owner_id}


# --- Leases ------------------------------------------------------------------------------


class LeaseWatch:
    """Tells which holders stopped renewing, judged on this process's clock alone: a
    holder is gone once its record showed the same claim and renewal count for a whole
    lease of continuous watching. No timestamp written by another machine is compared with
    this one's clock, so a skew between machines cannot expire a healthy job.

    Continuous means looks no more than ``max_gap`` seconds apart: after a longer gap
    (the store was down, or this process stalled) the holder may have been unable to renew
    for the same reason, so the watch starts over."""

    def __init__(self, max_gap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_gap, self.clock = max_gap, clock
        self._seen: dict[Any, tuple[tuple[Any, Any], float]] = {}
        self._last_look: float | None = None

    def look(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """One look at every held record (``_id``, ``claim``, ``renewals``,
        ``lease_seconds``); returns those whose holder has been silent for a lease."""
        at = self.clock()
        if self._last_look is not None and at - self._last_look > self.max_gap:
            self._seen.clear()
        self._last_look = at
        seen, silent = {}, []
        for record in records:
            state = (record.get("claim"), record.get("renewals"))
            before = self._seen.get(record["_id"])
            since = before[1] if before is not None and before[0] == state else at
            seen[record["_id"]] = (state, since)
            if at - since >= (record.get("lease_seconds") or DEFAULT_LEASE_SECONDS):
                silent.append(record)
        self._seen = seen
        return silent

    def restart(self, record_id: Any) -> None:
        """Something was done about this record: watch it anew from the next look."""
        self._seen.pop(record_id, None)

    def forget(self) -> None:
        """A look failed: what was seen so far no longer counts."""
        self._seen.clear()
        self._last_look = None
