"""The owner's controls of mp3mesh/core/jobs.py (cancel, retry, delete) and the attempt
history, applied to a record in memory (tests/memory_collection.py). The same tests run
on the MongoDB-wire server in tests/integration/test_job_control_wire.py."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.collection import Collection

from mp3mesh.core import jobs
from mp3mesh.files.v1 import files_pb2
from tests.memory_collection import MemoryCollection


@pytest.fixture
def collection() -> Collection:
    return MemoryCollection()  # type: ignore[return-value]


def apply(collection: Collection, change: jobs.Change) -> dict[str, Any] | None:
    return collection.find_one_and_update(
        change.filter, change.update, return_document=ReturnDocument.AFTER
    )


def queued(collection: Collection) -> Any:
    job = jobs.new_job(
        job_id=ObjectId(), owner_id="u1", owner_email="u1@example.com",
        filename="a.mp4", size=1, sha256="",
    )  # fmt: skip
    job.update(jobs.pending_announcement("video", 1000.0, {}))
    collection.insert_one(job)
    return job["_id"]


def claimed(collection: Collection, holder: str = "a") -> Any:
    job_id = queued(collection)
    assert apply(
        collection, jobs.claim(job_id, holder, lease_seconds=6, progress=1, converter="c1")
    )
    return job_id


def record(collection: Collection, job_id: Any) -> dict[str, Any]:
    found = collection.find_one({"_id": job_id})
    assert found is not None
    return found


def failed(collection: Collection, holder: str = "a") -> Any:
    job_id = claimed(collection, holder)
    change = jobs.fail(job_id, holder, "ffmpeg could not", expires_at=10.0, announce={})
    assert apply(collection, change)
    return job_id


# The cancel's JobFinished mark, as the gateway's relay makes it (for the `mp3` queue).
FINISHED = jobs.pending_announcement("mp3", 2000.0, {"traceparent": "t"})


def test_cancel_a_queued_job_announces_its_end_instead(collection: Collection) -> None:
    job_id = queued(collection)
    change = jobs.cancel(record(collection, job_id), expires_at=99.0, announce=FINISHED)
    done = apply(collection, change)
    assert done is not None and done["status"] == jobs.CANCELLED and done["expires_at"] == 99.0
    # The VideoUploaded still pending gives way to the JobFinished (outbox mark).
    assert (done["announce_queue"], done["announce_at"]) == ("mp3", 2000.0)
    finished = jobs.job_finished(done)
    assert finished.status == files_pb2.JOB_STATUS_CANCELLED
    assert (finished.job_id, finished.owner_id) == (str(job_id), "u1")
    assert finished.error == jobs.CANCEL_REASON and not finished.mp3_file_id
    # A relay takes it like any other announcement, and the confirm clears it.
    took = apply(collection, jobs.take_announcement(["video", "mp3"], 3000.0, 2500.0))
    assert took is not None and took["_id"] == job_id
    assert apply(collection, jobs.announced(job_id, "mp3", 2500.0))
    assert "announce_queue" not in record(collection, job_id)
    # A converter receiving the old VideoUploaded cannot claim it.
    assert apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1)) is None


def test_cancel_of_a_running_job_announces_it_too(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    done = apply(
        collection, jobs.cancel(record(collection, job_id), expires_at=9.0, announce=FINISHED)
    )
    assert done is not None and done["announce_queue"] == "mp3"
    assert jobs.job_finished(done).status == files_pb2.JOB_STATUS_CANCELLED


def test_a_retry_after_a_cancel_replaces_its_announcement(collection: Collection) -> None:
    """The gateway publishes the pending JobFinished before it retries (servicer.RetryJob);
    the retry's VideoUploaded then takes the mark."""
    job_id = queued(collection)
    assert apply(
        collection, jobs.cancel(record(collection, job_id), expires_at=9.0, announce=FINISHED)
    )
    video = jobs.pending_announcement("video", 3000.0, {})
    again = apply(collection, jobs.retry(record(collection, job_id), announce=video))
    assert again is not None and again["status"] == jobs.QUEUED
    assert again["announce_queue"] == "video" and "expires_at" not in again
    assert apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1))


def test_cancel_fences_the_holder_out(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    done = apply(collection, jobs.cancel(record(collection, job_id), expires_at=99.0, announce={}))
    assert done is not None and done["claim"] is None
    for change in (
        jobs.renew(job_id, "a"),
        jobs.progress(job_id, "a", 50),
        jobs.store(job_id, "a", ObjectId()),
        jobs.succeed(job_id, "a", mp3_id=ObjectId(), duration=1, size=1, expires_at=1, announce={}),
        jobs.fail(job_id, "a", "x", expires_at=1, announce={}),
    ):
        assert apply(collection, change) is None
    history = jobs.to_proto(record(collection, job_id), full=True).details.attempt_history
    assert [(a.number, a.outcome, a.converter) for a in history] == [(1, "cancelled", "c1")]


def test_cancel_is_refused_once_the_state_it_read_changed(collection: Collection) -> None:
    job_id = queued(collection)
    seen = record(collection, job_id)
    assert apply(collection, jobs.claim(job_id, "a", lease_seconds=6, progress=1))
    assert apply(collection, jobs.cancel(seen, expires_at=1.0, announce=FINISHED)) is None


def test_retry_queues_a_failed_or_cancelled_job_again(collection: Collection) -> None:
    job_id = failed(collection)
    pending = jobs.pending_announcement("video", 5.0, {})
    again = apply(collection, jobs.retry(record(collection, job_id), announce=pending))
    assert again is not None
    assert (again["status"], again["attempts"], again["error"]) == (jobs.QUEUED, 0, "")
    assert again["announce_queue"] == "video" and "expires_at" not in again
    assert apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1))
    history = jobs.to_proto(record(collection, job_id), full=True).details.attempt_history
    assert [(a.outcome, a.reason) for a in history] == [
        ("failed", "ffmpeg could not"),
        ("running", ""),
    ]


def test_retry_is_refused_for_a_running_succeeded_or_expired_job(collection: Collection) -> None:
    job_id = claimed(collection)
    assert apply(collection, jobs.retry(record(collection, job_id), announce={})) is None
    done = jobs.succeed(
        job_id, "a", mp3_id=ObjectId(), duration=1, size=1, expires_at=1, announce={}
    )
    assert apply(collection, done)
    assert apply(collection, jobs.retry(record(collection, job_id), announce={})) is None
    gone = failed(collection)
    assert apply(collection, jobs.expire(gone, 5.0))
    assert apply(collection, jobs.retry(record(collection, gone), announce={})) is None


def test_the_full_view_shows_the_run_and_its_stages(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    probe = {"container": "mov", "duration": 2.0, "streams": [
        {"index": 1, "type": "audio", "codec": "aac", "sample_rate": 44100,
         "channel_layout": "stereo"}]}  # fmt: skip
    run = jobs.record_run(job_id, "a", probe=probe, ffmpeg_args=["ffmpeg", "-i", "video"])
    assert apply(collection, run)
    stages = {"queued": 0.5, "fetch": 0.1, "convert": 1.5, "store": 0.2}
    done = jobs.succeed(
        job_id, "a", mp3_id=ObjectId(), duration=1, size=1, expires_at=1, announce={},
        stages=stages,
    )  # fmt: skip
    assert apply(collection, done)
    assert apply(collection, jobs.announced(job_id, "x", 0, took=0.01)) is None  # no mark
    job = jobs.to_proto(record(collection, job_id), full=True)
    assert list(job.details.ffmpeg_args) == ["ffmpeg", "-i", "video"]
    assert (
        job.details.probe.container == "mov"
        and job.details.probe.streams[0].channel_layout == "stereo"
    )
    assert job.details.stage_times.convert_seconds == 1.5
    assert [a.outcome for a in job.details.attempt_history] == ["succeeded"]
    assert job.status == files_pb2.JOB_STATUS_SUCCEEDED
    basic = jobs.to_proto(record(collection, job_id))
    assert not basic.HasField("details")


def test_the_history_names_each_way_an_attempt_ended(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    assert apply(collection, jobs.release(job_id, "a", "ffmpeg was killed by SIGKILL"))
    assert apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1))
    assert apply(collection, jobs.put_back(job_id, "b"))
    assert apply(collection, jobs.claim(job_id, "c", lease_seconds=6, progress=1))
    renewals = record(collection, job_id)["renewals"]
    assert apply(collection, jobs.requeue_expired(job_id, "c", renewals, "video"))
    history = jobs.to_proto(record(collection, job_id), full=True).details.attempt_history
    assert [(a.number, a.outcome) for a in history] == [
        (1, "released"),
        (2, "put back"),
        (3, "taken over"),
    ]
    assert history[0].reason == "ffmpeg was killed by SIGKILL"


def test_a_deleted_job_leaves_a_tombstone_naming_its_mp3(collection: Collection) -> None:
    job_id = failed(collection)
    stone = jobs.tombstone(record(collection, job_id))
    assert stone["owner_id"] == "u1" and stone["mp3_key"] is None
    assert jobs.deletion("u1", job_id) == {"_id": job_id, "owner_id": "u1"}
    assert jobs.deletion("u2", job_id) != jobs.deletion("u1", job_id)
