"""The converter on its own: ffmpeg on real files, and the job state machine on the
stack's MongoDB stand-in (redeliveries, crashed attempts)."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import pika
import pytest
from bson import ObjectId

from converter.consumer import (
    Converter,
    LeaseHeld,
    mp3_name,
    sweep_work_dir,
    work_dir_prefix,
)
from converter.settings import ConverterSettings
from converter.transcode import Deadline, Interrupted, Transcoder, Unconvertible, probe
from meshcore import gridfs_io, jobs
from mp3mesh.files.v1 import files_pb2
from tests.helpers import Stack


def test_extract_mp3_keeps_the_duration_and_reports_progress(media: Path, tmp_path: Path) -> None:
    progress: list[float] = []
    info = Transcoder().extract_mp3(
        media / "clip.mp4", tmp_path / "a.mp3", 128, 44100, on_progress=progress.append
    )
    assert info.has_audio and not info.has_video and abs(info.duration - 12) < 0.2
    assert probe(tmp_path / "a.mp3").duration == info.duration
    assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)


def test_ffmpeg_past_its_deadline_is_interrupted_not_unconvertible(
    media: Path, tmp_path: Path
) -> None:
    """Our own timeout is transient: the job is retried, not failed for good."""
    with pytest.raises(Interrupted, match="deadline"):
        Transcoder(Deadline(base_seconds=0, per_media_second=0)).extract_mp3(
            media / "clip.mp4", tmp_path / "a.mp3", 128, 44100
        )


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("clip.mp4", "clip.mp3"), ("/", "audio.mp3"), (".", "audio.mp3"), ("a/b.mov", "b.mp3")],
)
def test_mp3_names_come_from_any_upload_name(filename: str, expected: str) -> None:
    assert mp3_name(filename) == expected


@pytest.mark.parametrize(
    ("name", "needle"), [("notes.txt", "not a video"), ("silent.mp4", "no audio track")]
)
def test_unconvertible_inputs_say_why(media: Path, tmp_path: Path, name: str, needle: str) -> None:
    # No extension, as in the converter: ffmpeg must judge the content, not the name.
    source = tmp_path / "video"
    source.write_bytes((media / name).read_bytes())
    with pytest.raises(Unconvertible, match=needle):
        Transcoder().extract_mp3(source, tmp_path / "a.mp3", 128, 44100)
    assert not (tmp_path / "a.mp3").exists()


@pytest.fixture
def converter(stack: Stack) -> Converter:
    db = stack.mongo()[f"converter_test_{ObjectId()}"]
    return Converter(db, ConverterSettings(mp3_queue="mp3-test"))


def _queued_job(converter: Converter, video: Path) -> tuple[ObjectId, bytes, pika.BasicProperties]:
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
    )
    converter.jobs.insert_one(job)
    event = jobs.video_uploaded(job)
    return job_id, event.SerializeToString(), pika.BasicProperties(type=event.DESCRIPTOR.full_name)


def test_redelivery_of_a_finished_job_announces_it_again_without_converting(
    converter: Converter, media: Path
) -> None:
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    first = converter.handle(body, props)
    done = converter.jobs.find_one({"_id": job_id})
    assert done["status"] == jobs.SUCCEEDED and done["attempts"] == 1
    converter.close()  # the video is removed after the job was announced
    assert converter.db["videos.files"].find_one({"_id": job_id}) is None, "video deleted"
    assert done["expires_at"] > time.time() + 3600

    again = converter.handle(body, props)
    assert converter.jobs.find_one({"_id": job_id})["attempts"] == 1, "not converted twice"
    [(queue, finished, message_id)] = again.publish
    assert (queue, message_id) == ("mp3-test", str(job_id))
    assert finished == first.publish[0][1]
    assert finished.status == files_pb2.JOB_STATUS_SUCCEEDED


def test_a_crashed_attempt_leaves_no_orphan_mp3(converter: Converter, media: Path) -> None:
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    orphan = ObjectId()  # what a converter killed mid-upload left behind
    gridfs_io.write_file(converter.db, gridfs_io.MP3S, orphan, "x.mp3", io.BytesIO(b"partial"), {})
    converter.jobs.update_one(
        {"_id": job_id},
        {"$set": {"status": jobs.PROCESSING, "attempts": 1, "mp3_pending_id": orphan}},
    )
    converter.handle(body, props)
    done = converter.jobs.find_one({"_id": job_id})
    assert (
        done["status"] == jobs.SUCCEEDED and done["attempts"] == 2 and "mp3_pending_id" not in done
    )
    assert converter.db["mp3s.files"].find_one({"_id": orphan}) is None


def test_a_job_that_keeps_crashing_is_given_up(converter: Converter, media: Path) -> None:
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    converter.jobs.update_one({"_id": job_id}, {"$set": {"status": jobs.PROCESSING, "attempts": 2}})
    outcome = converter.handle(body, props)
    done = converter.jobs.find_one({"_id": job_id})
    assert done["status"] == jobs.FAILED and "never finished" in done["error"]
    assert outcome.publish[0][1].status == files_pb2.JOB_STATUS_FAILED


def test_a_job_leased_by_a_live_converter_is_left_to_it(converter: Converter, media: Path) -> None:
    """A second delivery while another converter holds the job: retried later (LeaseHeld),
    not converted twice, and not failed when its retries run out."""
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    held = {"status": jobs.PROCESSING, "attempts": 1, "locked_until": time.time() + 60}
    converter.jobs.update_one({"_id": job_id}, {"$set": held})
    with pytest.raises(LeaseHeld):
        converter.handle(body, props)
    assert converter.give_up(body, props, "retries exhausted").publish == []
    record = converter.jobs.find_one({"_id": job_id})
    assert (record["status"], record["attempts"]) == (jobs.PROCESSING, 1)


def test_an_expired_lease_is_taken_over(converter: Converter, media: Path) -> None:
    job_id, body, props = _queued_job(converter, media / "clip.mp4")
    dead = {"status": jobs.PROCESSING, "attempts": 1, "locked_until": time.time() - 1}
    converter.jobs.update_one({"_id": job_id}, {"$set": dead})
    converter.handle(body, props)
    record = converter.jobs.find_one({"_id": job_id})
    assert (record["status"], record["attempts"]) == (jobs.SUCCEEDED, 2)


def test_startup_sweep_removes_only_dead_converters_temp_dirs(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f"{work_dir_prefix(gone.pid)}abc"
    alive = tmp_path / f"{work_dir_prefix()}def"
    for d in (dead, alive):
        d.mkdir()
        (d / "video").write_bytes(b"x" * 1000)
    assert sweep_work_dir(str(tmp_path)) == [dead]
    assert not dead.exists() and alive.exists()
