"""The job's state machine (mp3mesh/core/jobs.py): every transition applied to a record in
memory (tests/memory_collection.py, no server needed) and on the MongoDB-wire stand-in,
through plain pymongo as a real MongoDB would take it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection

from mp3mesh.core import jobs
from tests.memory_collection import MemoryCollection

MP3_QUEUE, VIDEO_QUEUE = "mp3", "video"


@pytest.fixture(params=["memory", "wire"])
def collection(request: pytest.FixtureRequest) -> Iterator[Collection]:
    """The transitions applied in memory (no server), and on the MongoDB-wire server."""
    if request.param == "memory":
        yield MemoryCollection()  # type: ignore[misc]
        return
    client: MongoClient = request.getfixturevalue("wire_mongo")
    name = f"transitions_{ObjectId()}"
    yield client[name][jobs.COLLECTION]
    client.drop_database(name)


def apply(collection: Collection, change: jobs.Change) -> dict[str, Any] | None:
    return collection.find_one_and_update(
        change.filter, change.update, return_document=ReturnDocument.AFTER
    )


def queued(collection: Collection) -> Any:
    job = jobs.new_job(
        job_id=ObjectId(), owner_id="u1", owner_email="u1@example.com",
        filename="a.mp4", size=1, sha256="",
    )  # fmt: skip
    job.update(jobs.pending_announcement(VIDEO_QUEUE, 1000.0, {}))
    collection.insert_one(job)
    return job["_id"]


def claimed(collection: Collection, holder: str = "a") -> Any:
    job_id = queued(collection)
    assert apply(collection, jobs.claim(job_id, holder, lease_seconds=6, progress=1))
    return job_id


def finish_announcement() -> dict[str, Any]:
    return jobs.pending_announcement(MP3_QUEUE, 2000.0, {"traceparent": "x"})


def succeed(job_id: Any, token: str) -> jobs.Change:
    return jobs.succeed(
        job_id, token, mp3_id=ObjectId(), duration=12.0, size=100, expires_at=9e9,
        announce=finish_announcement(),
    )  # fmt: skip


def test_a_claim_takes_a_queued_job_once_under_its_token(collection: Collection) -> None:
    job_id = queued(collection)
    record = apply(collection, jobs.claim(job_id, "a", lease_seconds=6, progress=1))
    assert record is not None
    assert (record["status"], record["claim"], record["attempts"]) == (jobs.PROCESSING, "a", 1)
    assert (record["renewals"], record["lease_seconds"], record["progress"]) == (1, 6, 1)
    assert "announce_at" not in record, "the announcement did its work"
    assert apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1)) is None


def test_only_the_holder_renews_reports_progress_and_stores(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    for token, expected in (("b", None), ("a", 2)):
        record = apply(collection, jobs.renew(job_id, token))
        assert (record or {}).get("renewals") == expected
    assert apply(collection, jobs.progress(job_id, "b", 50)) is None
    assert apply(collection, jobs.progress(job_id, "a", 50))["progress"] == 50
    assert apply(collection, jobs.progress(job_id, "a", 40)) is None, "forward only"
    mp3_id = ObjectId()
    assert apply(collection, jobs.store(job_id, "b", mp3_id)) is None
    assert apply(collection, jobs.store(job_id, "a", mp3_id))["mp3_pending_id"] == mp3_id


def test_succeed_is_the_holders_alone_and_repeatable_by_it(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    assert apply(collection, succeed(job_id, "b")) is None
    done = apply(collection, succeed(job_id, "a"))
    assert done is not None and done["status"] == jobs.SUCCEEDED and done["progress"] == 100
    assert done["mp3_key"] == str(done["mp3_file_id"]) and "mp3_pending_id" not in done
    assert (done["announce_queue"], done["announce_at"]) == (MP3_QUEUE, 2000.0)
    assert apply(collection, succeed(job_id, "a"))["status"] == jobs.SUCCEEDED, "a retry"
    assert jobs.finished_by(done, "a") and not jobs.finished_by(done, "b")
    failing = jobs.fail(job_id, "a", "late", expires_at=9e9, announce=finish_announcement())
    assert apply(collection, failing) is None, "SUCCEEDED is never overwritten with FAILED"


def test_fail_is_the_holders_alone(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    for token, status in (("b", None), ("a", jobs.FAILED)):
        change = jobs.fail(job_id, token, "broken", expires_at=9e9, announce=finish_announcement())
        assert (apply(collection, change) or {}).get("status") == status
    assert apply(collection, succeed(job_id, "a")) is None, "FAILED stays FAILED"
    record = collection.find_one({"_id": job_id})
    assert (record["error"], record["announce_queue"]) == ("broken", MP3_QUEUE)


def test_give_up_fails_only_a_job_nobody_holds(collection: Collection) -> None:
    held, waiting = claimed(collection), queued(collection)
    for job_id, status in ((held, None), (waiting, jobs.FAILED)):
        change = jobs.give_up(job_id, "retries ran out", expires_at=9e9, announce={})
        assert (apply(collection, change) or {}).get("status") == status


def test_put_back_undoes_the_attempt_and_fences_the_holder_out(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    assert apply(collection, jobs.put_back(job_id, "b")) is None
    record = apply(collection, jobs.put_back(job_id, "a"))
    assert record is not None
    assert (record["status"], record["attempts"], record["claim"]) == (jobs.QUEUED, 0, None)
    assert apply(collection, jobs.renew(job_id, "a")) is None


def test_release_queues_the_job_again_with_the_attempt_counted(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    assert apply(collection, jobs.release(job_id, "b")) is None
    record = apply(collection, jobs.release(job_id, "a"))
    assert record is not None
    assert (record["status"], record["attempts"], record["claim"]) == (jobs.QUEUED, 1, None)
    retried = apply(collection, jobs.claim(job_id, "c", lease_seconds=6, progress=1))
    assert retried is not None and retried["attempts"] == 2


def test_a_requeued_job_is_claimed_anew_and_the_old_holder_is_fenced_out(
    collection: Collection,
) -> None:
    job_id = claimed(collection, "a")
    seen = collection.find_one({"_id": job_id})
    apply(collection, jobs.renew(job_id, "a"))  # renewed after the sweeper looked
    stale = jobs.requeue_expired(job_id, "a", seen["renewals"], VIDEO_QUEUE)
    assert apply(collection, stale) is None, "a renewal keeps the job with its holder"
    now = collection.find_one({"_id": job_id})
    record = apply(collection, jobs.requeue_expired(job_id, "a", now["renewals"], VIDEO_QUEUE))
    assert record is not None and record["status"] == jobs.QUEUED
    assert (record["announce_queue"], record["announce_at"]) == (VIDEO_QUEUE, 0)
    taken = apply(collection, jobs.claim(job_id, "b", lease_seconds=6, progress=1))
    assert taken is not None and taken["attempts"] == 2
    for late in (
        jobs.renew(job_id, "a"),
        jobs.store(job_id, "a", ObjectId()),
        succeed(job_id, "a"),
    ):
        assert apply(collection, late) is None, "the old holder's writes match nothing"
    assert apply(collection, succeed(job_id, "b"))["status"] == jobs.SUCCEEDED


def test_the_relay_takes_a_due_announcement_and_clears_only_what_it_published(
    collection: Collection,
) -> None:
    job_id = queued(collection)  # VideoUploaded pending since 1000
    queues = [VIDEO_QUEUE, MP3_QUEUE]
    assert apply(collection, jobs.take_announcement(queues, 999.0, 1500.0)) is None, "not due"
    taken = apply(collection, jobs.take_announcement(queues, 1001.0, 1500.0))
    assert taken is not None and taken["announce_at"] == 1500.0
    assert apply(collection, jobs.take_announcement(queues, 1001.0, 1600.0)) is None, "taken"
    assert apply(collection, jobs.announced(job_id, VIDEO_QUEUE, 1000.0)) is None, "stale try"
    cleared = apply(collection, jobs.announced(job_id, VIDEO_QUEUE, 1500.0))
    assert cleared is not None and "announce_at" not in cleared


def test_an_announcement_still_in_the_brokers_hands_is_kept_from_the_relays(
    collection: Collection,
) -> None:
    job_id = queued(collection)  # VideoUploaded tried at 1000, not confirmed
    held = apply(collection, jobs.hold_announcement(job_id, VIDEO_QUEUE, 1000.0, 1010.0))
    assert held is not None and held["announce_at"] == 1010.0
    queues = [VIDEO_QUEUE, MP3_QUEUE]
    assert apply(collection, jobs.take_announcement(queues, 1005.0, 1012.0)) is None
    assert apply(collection, jobs.hold_announcement(job_id, VIDEO_QUEUE, 1000.0, 1020.0)) is None
    assert apply(collection, jobs.announced(job_id, VIDEO_QUEUE, 1010.0)) is not None
    assert apply(collection, jobs.hold_announcement(job_id, VIDEO_QUEUE, 1010.0, 1030.0)) is None


def test_a_queued_job_without_an_announcement_is_announced_again(collection: Collection) -> None:
    job_id = queued(collection)  # VideoUploaded pending
    assert apply(collection, jobs.announce_again(job_id, 0, VIDEO_QUEUE)) is None, "pending"
    apply(collection, jobs.announced(job_id, VIDEO_QUEUE, 1000.0))  # confirmed; then lost
    assert [r["_id"] for r in collection.find(jobs.unannounced_queued())] == [job_id]
    assert apply(collection, jobs.announce_again(job_id, 1, VIDEO_QUEUE)) is None, "claimed since"
    again = apply(collection, jobs.announce_again(job_id, 0, VIDEO_QUEUE))
    assert again is not None and (again["announce_queue"], again["announce_at"]) == (VIDEO_QUEUE, 0)


def test_expiry_finds_due_jobs_then_the_expired_records(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    apply(collection, succeed(job_id, "a"))  # expires at 9e9
    collection.update_one({"_id": job_id}, {"$set": {"expires_at": 100.0}})
    assert [r["_id"] for r in collection.find(jobs.due_for_expiry(101.0))] == [job_id]
    apply(collection, jobs.expire(job_id, 101.0))
    assert list(collection.find(jobs.due_for_expiry(102.0))) == []
    assert list(collection.find(jobs.expired_before(101.0))) == []
    assert [r["_id"] for r in collection.find(jobs.expired_before(102.0))] == [job_id]


def test_owners_find_their_jobs_only(collection: Collection) -> None:
    job_id = claimed(collection, "a")
    done = apply(collection, succeed(job_id, "a"))
    assert collection.find_one(jobs.owned("u1", job_id))["_id"] == job_id
    assert collection.find_one(jobs.owned("u2", job_id)) is None
    assert collection.find_one(jobs.owned_with_mp3("u1", done["mp3_file_id"]))["_id"] == job_id
    assert collection.find_one(jobs.owned_with_mp3("u2", done["mp3_file_id"])) is None
