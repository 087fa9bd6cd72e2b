"""Job control on the real mesh (honcho stack): cancel (a queued job never converted, a
running ffmpeg stopped and its partial MP3 removed), delete, retry, the full view of how a
job was done, and idempotent uploads, including one whose answer was lost after the
gateway committed it."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import psutil
import pytest
from bson import ObjectId

from devstack import Stack, wait_for
from mp3mesh.core import gridfs_io
from mp3mesh.files.v1 import files_pb2

FFMPEG = "ffmpeg-linux"


def _ffmpegs(stack: Stack) -> list[psutil.Process]:
    converter = stack.service_process("converter")
    return [p for p in converter.children(recursive=True) if FFMPEG in " ".join(p.cmdline())]


def _mp3_chunks(stack: Stack, job_id: str, mp3_ids: tuple[ObjectId, ...] = ()) -> int:
    """How many MP3 files and chunks the job has in GridFS (``mp3_ids``: files whose
    chunks to look for besides those its files name)."""
    db = _db(stack)
    files = list(db[f"{gridfs_io.MP3S}.files"].find({"metadata.job_id": job_id}, {"_id": 1}))
    chunks = db[f"{gridfs_io.MP3S}.chunks"]
    ids = {f["_id"] for f in files} | set(mp3_ids)
    return len(files) + sum(chunks.find_one({"files_id": i}, {"n": 1}) is not None for i in ids)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _db(stack: Stack):  # type: ignore[no-untyped-def]
    return stack.mongo()[stack.env["MONGO_DB"]]


def test_cancel_stops_a_running_ffmpeg_and_removes_its_partial_mp3(
    stack: Stack, long_video: Path
) -> None:
    client, _ = stack.new_user()
    job = client.upload(long_video, content_type="video/x-msvideo")
    wait_for(lambda: client.job(job.id).progress_percent > 10, "ffmpeg under way", 120)
    (ffmpeg,) = _ffmpegs(stack)
    cancelled_at = time.monotonic()
    cancelled = client.cancel(job.id)
    assert cancelled.status == files_pb2.JOB_STATUS_CANCELLED
    wait_for(lambda: not _alive(ffmpeg), "ffmpeg stopped", 30)
    stopped_after = time.monotonic() - cancelled_at
    print(f"\ncancel to ffmpeg gone: {stopped_after:.2f} s")
    wait_for(lambda: _mp3_chunks(stack, job.id) == 0, "partial MP3 removed", 30)
    work_dir = Path(stack.env["WORK_DIR"])
    wait_for(lambda: list(work_dir.iterdir()) == [], "the partial MP3 on disk removed", 30)
    full = client.job(job.id, full=True)
    assert full.status == files_pb2.JOB_STATUS_CANCELLED
    assert [a.outcome for a in full.details.attempt_history] == ["cancelled"]
    assert full.details.ffmpeg_args and full.details.probe.duration_seconds > 2000
    assert client.retry(job.id).status == files_pb2.JOB_STATUS_QUEUED
    done = client.wait(job.id, timeout=300)
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED, done.error
    history = client.job(job.id, full=True).details.attempt_history
    assert [a.outcome for a in history] == ["cancelled", "succeeded"]


def test_a_cancelled_queued_job_is_never_converted_nor_mailed(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    converter = stack.service_process("converter")
    converter.suspend()
    try:
        job = client.upload(media / "clip.mp4")
        watch = client.watch(job.id, timeout=60)
        assert next(watch).status == files_pb2.JOB_STATUS_QUEUED
        cancelled_at = time.monotonic()
        cancelled = client.cancel(job.id)
        watched = list(watch)
        print(f"\na watcher saw the cancel {time.monotonic() - cancelled_at:.2f} s after it")
    finally:
        converter.resume()
    assert cancelled.status == files_pb2.JOB_STATUS_CANCELLED
    assert watched[-1].status == files_pb2.JOB_STATUS_CANCELLED, "WatchJob ends there"
    wait_for(lambda: stack.queue_depth(stack.env["VIDEO_QUEUE"])[0] == 0, "message taken", 60)
    time.sleep(1)  # a claim would show now; none may come
    after = client.job(job.id, full=True)
    assert after.status == files_pb2.JOB_STATUS_CANCELLED and after.attempts == 0
    assert not after.details.attempt_history and not stack.mails(job.id)
    assert client.cancel(job.id).status == files_pb2.JOB_STATUS_CANCELLED  # repeatable


def test_full_view_delete_and_retry_of_finished_jobs(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    job = client.upload(media / "clip.mp4")
    done = client.wait(job.id, timeout=120)
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED
    assert not done.HasField("details"), "WatchJob keeps the basic view"
    full = client.job(job.id, full=True)
    assert full.details.probe.container.startswith("mov,mp4")
    assert abs(full.details.probe.duration_seconds - 12) < 0.1
    audio = [s for s in full.details.probe.streams if s.type == "audio"]
    assert audio and audio[0].codec == "aac" and audio[0].sample_rate_hz > 0
    assert "ffmpeg" in full.details.ffmpeg_args[0] and "-i" in full.details.ffmpeg_args
    times = full.details.stage_times
    assert times.fetch_seconds > 0 and times.convert_seconds > 0 and times.store_seconds > 0
    (attempt,) = full.details.attempt_history
    assert attempt.outcome == "succeeded"
    assert 0 < attempt.start_time.seconds <= attempt.end_time.seconds, "both times stored"
    assert attempt.start_time.ToDatetime() <= attempt.end_time.ToDatetime()
    print(f"\nstage times of a 12 s clip: {times}")
    for call in (client.cancel, client.retry):
        with pytest.raises(grpc.RpcError) as refused:
            call(job.id)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SUCCEEDED" in (refused.value.details() or "")

    stack.wait_for_mail(job.id)

    def announced() -> bool:
        return client.job(job.id, full=True).details.stage_times.announce_seconds > 0

    wait_for(announced, "the announce stage timed", 30)
    client.delete(job.id)
    db = _db(stack)
    assert db[f"{gridfs_io.VIDEOS}.files"].find_one({"_id": ObjectId(job.id)}) is None
    assert db[f"{gridfs_io.VIDEOS}.chunks"].find_one({"files_id": ObjectId(job.id)}) is None
    assert _mp3_chunks(stack, job.id, (ObjectId(done.mp3_file_id),)) == 0
    with pytest.raises(grpc.RpcError) as gone:
        client.job(job.id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert "was deleted" in (gone.value.details() or "")
    with pytest.raises(grpc.RpcError) as gone_mp3:
        client.download(done.mp3_file_id, Path("/dev/null"))
    assert gone_mp3.value.code() == grpc.StatusCode.NOT_FOUND
    assert "deleted" in (gone_mp3.value.details() or "")


def test_a_failed_job_is_retried_with_its_video(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    job = client.upload(media / "notes.txt", content_type="text/plain")
    failed = client.wait(job.id, timeout=120)
    assert failed.status == files_pb2.JOB_STATUS_FAILED
    again = client.retry(job.id)
    assert again.status == files_pb2.JOB_STATUS_QUEUED
    failed_again = client.wait(job.id, timeout=120)
    assert failed_again.status == files_pb2.JOB_STATUS_FAILED
    history = client.job(job.id, full=True).details.attempt_history
    assert [a.outcome for a in history] == ["failed", "failed"]
    assert history[0].reason and history[1].converter
    # Retention removes the video (as housekeeping does when the job expires):
    gridfs_io.discard(_db(stack), gridfs_io.VIDEOS, ObjectId(job.id))
    with pytest.raises(grpc.RpcError) as gone:
        client.retry(job.id)
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "video is no longer stored" in (gone.value.details() or "")


def test_delete_during_ffmpeg_stops_it_and_leaves_nothing(stack: Stack, long_video: Path) -> None:
    client, _ = stack.new_user()
    job = client.upload(long_video, content_type="video/x-msvideo")
    wait_for(lambda: client.job(job.id).progress_percent > 10, "ffmpeg under way", 120)
    (ffmpeg,) = _ffmpegs(stack)
    deleted_at = time.monotonic()
    client.delete(job.id)
    wait_for(lambda: not _alive(ffmpeg), "ffmpeg stopped", 30)
    print(f"\ndelete to ffmpeg gone: {time.monotonic() - deleted_at:.2f} s")
    work_dir = Path(stack.env["WORK_DIR"])
    wait_for(lambda: list(work_dir.iterdir()) == [], "work directory emptied", 30)
    db = _db(stack)
    assert db[f"{gridfs_io.VIDEOS}.files"].find_one({"_id": ObjectId(job.id)}) is None
    assert db[f"{gridfs_io.VIDEOS}.chunks"].find_one({"files_id": ObjectId(job.id)}) is None
    assert _mp3_chunks(stack, job.id) == 0
    with pytest.raises(grpc.RpcError) as gone:
        client.job(job.id)
    assert "was deleted" in (gone.value.details() or "")


def test_the_same_idempotency_key_answers_the_same_job(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    key = str(uuid.uuid4())
    first = client.upload(media / "clip.mp4", idempotency_key=key)
    second = client.upload(media / "clip.mp4", idempotency_key=key)
    assert second.id == first.id
    owner = first.owner_id
    videos = _db(stack)[f"{gridfs_io.VIDEOS}.files"]
    stored = {v["_id"] for v in videos.find({"metadata.owner_id": owner}, {"_id": 1})}
    assert stored <= {ObjectId(first.id)}
    assert [j.id for j in client.jobs()] == [first.id]
    with pytest.raises(grpc.RpcError) as other:
        client.upload(media / "silent.mp4", idempotency_key=key)
    assert other.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "Idempotency-Key" in (other.value.details() or "")
    assert client.upload(media / "clip.mp4", idempotency_key=str(uuid.uuid4())).id != first.id


def test_the_same_key_with_other_options_is_another_upload(stack: Stack, media: Path) -> None:
    """The same file under the same key but to be converted otherwise is refused as a
    different file is; the same options (a preset, resolved) answer the original job."""
    client, _ = stack.new_user()
    key = str(uuid.uuid4())
    music = files_pb2.ConversionOptions(preset="music-320")
    first = client.upload(media / "clip.mp4", idempotency_key=key, options=music)
    again = client.upload(media / "clip.mp4", idempotency_key=key, options=music)
    assert again.id == first.id
    for other in (
        files_pb2.ConversionOptions(),
        files_pb2.ConversionOptions(preset="music-320", bitrate_kbps=128),
        files_pb2.ConversionOptions(preset="podcast-mono-64"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            client.upload(media / "clip.mp4", idempotency_key=key, options=other)
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS, other
        assert "conversion options" in (refused.value.details() or "")
    assert [j.id for j in client.jobs()] == [first.id]
    # Over REST (a preset in the query), on both edges alike.
    for base in (stack.envoy_url, stack.shim_url):
        answer = httpx.post(
            f"{base}/v1/videos",
            params={"metadata.filename": "clip.mp4", "metadata.options.preset": "podcast-mono-64"},
            headers={"Authorization": f"Bearer {client.token}", "Idempotency-Key": key,
                     "Content-Type": "video/mp4"},
            content=(media / "clip.mp4").read_bytes(),
            timeout=60,
        )  # fmt: skip
        assert answer.status_code == 409, (base, answer.text)


@pytest.mark.parametrize("edge", ["envoy", "shim"])
def test_an_upload_whose_answer_was_lost_is_answered_again(
    stack: Stack, media: Path, edge: str
) -> None:
    """The first request is sent whole over a raw socket, which is closed unread once
    the job is recorded (the gateway committed; its answer is lost); the same request
    again, with the same key, answers that job and stores nothing more."""
    client, _ = stack.new_user()
    base = stack.envoy_url if edge == "envoy" else stack.shim_url
    url = urlsplit(base)
    body = (media / "clip.mp4").read_bytes()
    key = str(uuid.uuid4())
    head = (
        f"POST /v1/videos?metadata.filename=clip.mp4 HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {client.token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    owner = client.whoami().id
    jobs_of_owner = _db(stack)["jobs"]
    with socket.create_connection((url.hostname, url.port)) as raw:
        raw.sendall(head + body)
        wait_for(lambda: jobs_of_owner.find_one({"owner_id": owner}) is not None, "committed", 60)
        raw.shutdown(socket.SHUT_RDWR)
    (committed,) = jobs_of_owner.find({"owner_id": owner})
    answer = httpx.post(
        f"{base}/v1/videos",
        params={"metadata.filename": "clip.mp4"},
        headers={"Authorization": f"Bearer {client.token}", "Idempotency-Key": key,
                 "Content-Type": "video/mp4"},
        content=body,
        timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["job"]["id"] == str(committed["_id"])
    videos = _db(stack)[f"{gridfs_io.VIDEOS}.files"]
    # A video's file id is its job's id: no other video was stored (the one there was
    # may already be converted and dropped).
    stored = {v["_id"] for v in videos.find({"metadata.owner_id": owner}, {"_id": 1})}
    assert stored <= {committed["_id"]}
    assert len(list(jobs_of_owner.find({"owner_id": owner}, {"_id": 1}))) == 1
