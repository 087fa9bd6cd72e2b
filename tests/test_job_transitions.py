"""The job's state machine (meshcore/jobs.py): every transition applied to a record in
memory (tests/memory_collection.py, no server needed) and on the MongoDB-wire server the
stack runs, through plain pymongo as a real MongoDB would take it. And the sweeper's
judgement of a lease, on a clock the test turns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection

from meshcore import jobs
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(renewals: int, claim: str = "a", lease: float = 6.0) -> dict[str, Any]:
    return {"_id": 1, "claim": claim, "renewals": renewals, "lease_seconds": lease}


def watched(looks: list[tuple[float, dict[str, Any]]], max_gap: float = 3.0) -> list[float]:
    """When (on the watch's clock) the holder was judged silent, over ``looks``."""
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=max_gap, clock=clock)
    silent = []
    for at, seen in looks:
        clock.now = at
        if watch.look([seen]):
            silent.append(at)
    return silent


def test_a_holder_is_silent_after_a_whole_lease_without_a_renewal() -> None:
    looks = [(float(t), record(1)) for t in range(0, 8)]
    assert watched(looks) == [6.0, 7.0]


def test_a_renewal_or_a_new_claim_starts_the_lease_over() -> None:
    looks = [(0.0, record(1)), (2.0, record(1)), (4.0, record(2)), (6.0, record(2))]
    assert watched(looks) == []
    looks = [(0.0, record(1)), (5.0, record(1, claim="b")), (10.0, record(1, claim="b"))]
    assert watched(looks, max_gap=10) == []


def test_time_the_watch_could_not_look_does_not_count() -> None:
    """A store outage (or this process stalled) between looks: the holder could not renew
    either, so the lease is watched anew from the next look."""
    looks = [(0.0, record(1)), (1.0, record(1)), (13.0, record(1)), (14.0, record(1))]
    assert watched(looks) == []
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=3.0, clock=clock)
    for at in (0.0, 1.0, 2.0, 3.0, 4.0):
        clock.now = at
        watch.look([record(1)])
    watch.forget()  # a failed look
    clock.now = 6.0
    assert watch.look([record(1)]) == []


def test_a_restarted_watch_waits_a_whole_lease_again() -> None:
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=3.0, clock=clock)
    silent = []
    for at in range(0, 14):
        clock.now = float(at)
        if watch.look([record(1)]):
            silent.append(at)
            watch.restart(1)
    assert silent == [6, 13]


def test_a_record_without_a_lease_gets_the_default() -> None:
    looks = [(0.0, record(1, lease=0)), (30.0, record(1, lease=0)), (60.0, record(1, lease=0))]
    assert watched(looks, max_gap=100) == [60.0]


def test_every_lookup_of_the_relay_and_housekeeping_starts_from_an_indexed_field() -> None:
    """Each query the relay, housekeeping and the owner's reads run names a field of
    jobs.INDEXED (or _id), which FileStore.ensure_indexes indexes (tests/test_gateway_store.py
    checks the indexes exist on the wire server)."""
    queries = {
        "held": jobs.held(),
        "unannounced_queued": jobs.unannounced_queued(),
        "due_for_expiry": jobs.due_for_expiry(0.0),
        "expired_before": jobs.expired_before(0.0),
        "take_announcement": jobs.take_announcement([VIDEO_QUEUE], 0.0, 0.0).filter,
        "owned": jobs.owned("u1", ObjectId()),
        "owned_with_mp3": jobs.owned_with_mp3("u1", ObjectId()),
    }
    for name, query in queries.items():
        assert set(query) & {*jobs.INDEXED, "_id"}, name
