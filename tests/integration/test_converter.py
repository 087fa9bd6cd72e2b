"""The converter's side of the job's state machine on the MongoDB-wire stand-in:
redeliveries, takeovers, jobs given up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from bson import ObjectId
from pymongo import MongoClient

from devstack import free_port, wait_for
from mp3mesh.converter.claim import Claim, JobLost
from mp3mesh.converter.handler import (
    Converter,
    LeaseHeld,
)
from mp3mesh.converter.settings import ConverterSettings
from mp3mesh.converter.transcode import Cancelled
from mp3mesh.core import gridfs_io, jobs
from mp3mesh.files.v1 import files_pb2


@pytest.fixture
def converter(wire_mongo: MongoClient) -> Iterator[Converter]:
    name = f"converter_test_{ObjectId()}"
    yield Converter(wire_mongo[name], ConverterSettings(mp3_queue="mp3-test"))
    wire_mongo.drop_database(name)


def _queued_job(
    converter: Converter, video: Path, options: files_pb2.ConversionOptions | None = None
) -> tuple[ObjectId, bytes, pika.BasicProperties]:
    job_id = ObjectId()
    with video.open("rb") as f:
        gridfs_io.write_file(
            converter.db, gridfs_io.VIDEOS, job_id, video.name, f, {"owner_id": "u1"}
        )
    job = jobs.new_job(
        job_id=job_id,
        owner_id="u1",
        owner_email="u1@example.com",
        filename=video.name,
        size=video.stat().st_size,
        sha256="",
        options=options,
    )
    converter.jobs.insert_one(job)
    event = jobs.video_uploaded(job)
    return job_id, event.SerializeToString(), pika.BasicProperties(type=event.DESCRIPTOR.full_name)


def _mp3s(converter: Converter, job_id: ObjectId) -> list[dict]:
    return list(converter.db[f"{gridfs_io.MP3S}.files"].find({"metadata.job_id": str(job_id)}))


def test_a_finished_job_has_its_result_pending_and_a_redelivery_only_announces_it(
    converter: Converter, media: Path
) -> None:
    """With no broker to publish to, the JobFinished waits on the record for the relay;
    a redelivered message announces the job again without converting it."""
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    assert converter.handle(body, props).publish == []
    done = converter.jobs.find_one({"_id": job_id})
    assert done["status"] == jobs.SUCCEEDED and done["attempts"] == 1
    assert done["announce_queue"] == "mp3-test", "the result is in the outbox"
    [mp3] = _mp3s(converter, job_id)
    assert (mp3["_id"], mp3["metadata"]["claim"]) == (done["mp3_file_id"], done["claim"])
    converter.close()  # the video is removed after the job was announced
    assert converter.db["videos.files"].find_one({"_id": job_id}) is None, "video deleted"
    assert done["expires_at"] > time.time() + 3600
    # How it was done, for the full view: the probe and the ffmpeg command in the one
    # write before ffmpeg ran, the stage times in the final one.
    assert done["probe"]["container"].startswith("mov,mp4")
    assert done["ffmpeg_args"][-1].endswith("audio.mp3") and "-i" in done["ffmpeg_args"]
    assert {"queued", "fetch", "convert", "store"} <= set(done["stages"])

    again = converter.handle(body, props)
    assert converter.jobs.find_one({"_id": job_id})["attempts"] == 1, "not converted twice"
    [(queue, finished, message_id)] = again.publish
    assert (queue, message_id) == ("mp3-test", str(job_id))
    assert finished == jobs.job_finished(done)
    assert finished.status == files_pb2.JOB_STATUS_SUCCEEDED


def _taken_over(converter: Converter, job_id: ObjectId) -> None:
    """What the sweeper and a second converter do to a job whose holder went silent."""
    record = converter.jobs.find_one({"_id": job_id})
    for change in (
        jobs.requeue_expired(job_id, record["claim"], record["renewals"], "video-test"),
        jobs.claim(job_id, "the-other-converter", lease_seconds=60, progress=1),
    ):
        converter.jobs.update_one(change.filter, change.update)


def _claimed(converter: Converter, video: Path) -> Claim:
    """A job of ``video``, claimed by ``converter``."""
    job_id, _, _ = _queued_job(converter, video)
    claim = converter._claim(job_id)
    assert claim is not None
    return claim


def test_a_converter_that_lost_its_job_leaves_no_mp3_and_changes_nothing(
    converter: Converter, media: Path
) -> None:
    claim = _claimed(converter, media / "clip.mp4")
    job_id = claim.job_id
    _taken_over(converter, job_id)
    with pytest.raises(JobLost):
        converter._convert(claim)
    record = converter.jobs.find_one({"_id": job_id})
    assert (record["status"], record["claim"], record["attempts"]) == (
        jobs.PROCESSING, "the-other-converter", 2,
    )  # fmt: skip
    assert _mp3s(converter, job_id) == [], "no MP3 written under a lost claim"


def test_a_lost_lease_stops_ffmpeg_at_once(
    converter: Converter, long_video: Path, tmp_path: Path
) -> None:
    """The holder's renewal matches nothing once another converter took the job: its
    ffmpeg is stopped within a renewal period, not left to finish."""
    claim = _claimed(converter, long_video)
    started = time.monotonic()
    with claim.renewed(lease_seconds=0.6), pytest.raises(Cancelled):
        _taken_over(converter, claim.job_id)
        converter.transcoder.extract_mp3(
            long_video, tmp_path / "a.mp3", 128, 44100, cancel=claim.lost
        )
    assert claim.lost.is_set() and time.monotonic() - started < 5


def test_a_renewal_after_the_holders_own_final_write_is_no_loss(
    converter: Converter, media: Path
) -> None:
    claim = _claimed(converter, media / "clip.mp4")
    with claim.renewed(lease_seconds=0.3):
        claim.write_final(
            jobs.fail(claim.job_id, claim.token, "broken", expires_at=9e9, announce={})
        )
        time.sleep(0.5)  # renewals come every 0.1 s and now match nothing
    assert not claim.lost.is_set()


def test_a_store_outage_costs_a_percentage_never_the_conversion(
    converter: Converter, media: Path
) -> None:
    claim = _claimed(converter, media / "clip.mp4")
    store = claim.collection
    unreachable: MongoClient = MongoClient(f"mongodb://127.0.0.1:{free_port()}", timeoutMS=300)
    claim.collection = unreachable["x"][jobs.COLLECTION]
    claim.progress(50)  # logged, not raised
    unreachable.close()
    claim.collection = store
    claim.progress(60)
    assert converter.jobs.find_one({"_id": claim.job_id})["progress"] == 60
    assert not claim.lost.is_set()


def test_a_passing_failure_queues_the_job_again_for_the_retry(
    converter: Converter, media: Path
) -> None:
    """The video cannot be read (here: it is gone): the attempt counts, and the job is
    QUEUED again at once for the retried message, not held until its lease runs out."""
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    gridfs_io.discard(converter.db, gridfs_io.VIDEOS, job_id)
    with pytest.raises(gridfs_io.MissingFile):
        converter.handle(body, props)
    record = converter.jobs.find_one({"_id": job_id})
    assert (record["status"], record["attempts"], record["claim"]) == (jobs.QUEUED, 1, None)


def test_a_job_that_keeps_crashing_is_given_up(converter: Converter, media: Path) -> None:
    """Started twice already (each holder died and the sweeper put it back): failed."""
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    converter.jobs.update_one({"_id": job_id}, {"$set": {"attempts": 2}})
    assert converter.handle(body, props).publish == []
    done = converter.jobs.find_one({"_id": job_id})
    assert done["status"] == jobs.FAILED and "never finished" in done["error"]
    assert done["announce_queue"] == "mp3-test"
    converter.close()
    video = converter.db["videos.files"].find_one({"_id": job_id})
    assert video is not None, "the video stays until the job expires, for a retry"


def test_a_job_leased_by_a_live_converter_is_left_to_it(converter: Converter, media: Path) -> None:
    """A second delivery while another converter holds the job: retried later (LeaseHeld),
    not converted twice, and not failed when its retries run out."""
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    held = {"status": jobs.PROCESSING, "attempts": 1, "claim": "the-other-converter"}
    converter.jobs.update_one({"_id": job_id}, {"$set": held})
    with pytest.raises(LeaseHeld):
        converter.handle(body, props)
    assert converter.give_up(body, props, "retries exhausted").publish == []
    record = converter.jobs.find_one({"_id": job_id})
    assert (record["status"], record["attempts"]) == (jobs.PROCESSING, 1)


def test_a_queued_job_whose_message_is_dead_lettered_fails_visibly(
    converter: Converter, media: Path
) -> None:
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    assert converter.give_up(body, props, "retries exhausted").publish == []
    record = converter.jobs.find_one({"_id": job_id})
    assert record["status"] == jobs.FAILED and "retries exhausted" in record["error"]
    assert record["announce_queue"] == "mp3-test", "its result is in the outbox"
    converter.close()
    video = converter.db["videos.files"].find_one({"_id": job_id})
    assert video is not None, "the video stays until the job expires, for a retry"


def test_a_job_refused_on_its_probe_keeps_what_the_probe_found(
    converter: Converter, media: Path
) -> None:
    """No ffmpeg ran, so no command was written before it: the final write carries the
    probe."""
    options = files_pb2.ConversionOptions(start="1:00")
    job_id, body, props = _queued_job(converter, media / "clip.mp4", options)
    converter.handle(body, props)
    done = converter.jobs.find_one({"_id": job_id})
    assert done["status"] == jobs.FAILED and "past the end of the video" in done["error"]
    assert done["probe"]["duration"] > 0 and "ffmpeg_args" not in done


def test_a_holder_sees_its_job_cancelled_between_renewals(
    converter: Converter, media: Path
) -> None:
    """The lease's one thread reads the record every cancel_poll seconds between its
    renewals; a cancel (the claim cleared) sets lost, saying why."""
    claim = _claimed(converter, media / "clip.mp4")
    with claim.renewed(lease_seconds=60, cancel_poll=0.05):
        record = converter.jobs.find_one({"_id": claim.job_id})
        cancel = jobs.cancel(record, expires_at=9e9, announce={})
        converter.jobs.update_one(cancel.filter, cancel.update)
        wait_for(claim.lost.is_set, "the holder saw the cancel", 30)
    assert claim.lost_because == "cancelled"
    assert converter.jobs.find_one({"_id": claim.job_id})["renewals"] == 1, "no renewal due"


def test_renewals_come_between_the_looks(converter: Converter, media: Path) -> None:
    claim = _claimed(converter, media / "clip.mp4")
    with claim.renewed(lease_seconds=0.3, cancel_poll=10):
        wait_for(
            lambda: converter.jobs.find_one({"_id": claim.job_id})["renewals"] >= 4,
            "three renewals, one every 0.1 s",
            30,
        )
    assert not claim.lost.is_set()
