"""Job changes pushed through the broker (the `job.events` topic exchange): the converter
announces each change of a job, the gateway feeds WatchJob from them, and a long file's
progress moves smoothly from 0 to 100."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from bson import ObjectId

from devstack import AMQP_URL, Stack
from mp3mesh.converter.handler import PROGRESS_FFMPEG_END, PROGRESS_FFMPEG_START, Progress
from mp3mesh.core import jobs
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.servicer import _newer
from tests.helpers import publish_notice


class Notices:
    """The JobChanged notices of one job, as a subscriber of the stack's exchange gets
    them (a queue of the test's own, bound to the job's routing key)."""

    def __init__(self, stack: Stack, job_id: str) -> None:
        self.received: list[files_pb2.Job] = []
        self._connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = self._connection.channel()
        exchange = stack.env["JOB_EVENTS_EXCHANGE"]
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        self._queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self._queue, exchange, routing_key=job_id)
        self._channel = channel

    def collect(self) -> list[files_pb2.Job]:
        while True:
            method, _, body = self._channel.basic_get(self._queue, auto_ack=True)
            if method is None:
                return self.received
            notice = events_pb2.JobChanged()
            notice.ParseFromString(body)
            self.received.append(notice.job)

    def close(self) -> None:
        self._connection.close()


def test_progress_is_written_forward_and_at_most_every_interval() -> None:
    now = [0.0]
    written: list[int] = []
    progress = Progress(written.append, interval=0.25, clock=lambda: now[0])
    progress.reached(PROGRESS_FFMPEG_START)
    for step in range(1, 81):  # ffmpeg reports every 62.5 ms for 5 s
        now[0] += 0.0625
        progress.ffmpeg(step / 80)
    progress.ffmpeg(0.5)  # a late, older report
    assert written[0] == PROGRESS_FFMPEG_START
    assert written == sorted(set(written)), "forward only"
    assert len(written) == 1 + 20  # one write per 250 ms of the 5 s
    assert written[-1] == PROGRESS_FFMPEG_END


def _job(status: int, attempts: int, progress: int, at: float) -> files_pb2.Job:
    job = files_pb2.Job(id="j", status=status, attempts=attempts, progress_percent=progress)
    job.update_time.FromNanoseconds(int(at * 1e9))
    return job


def test_a_watcher_sees_the_changes_of_a_converter_whose_clock_is_behind() -> None:
    """The gateway wrote the job at t=100; the converter, 60 s behind, writes each of its
    changes "earlier": every one of them still reaches the watcher, in order."""
    processing, succeeded = files_pb2.JOB_STATUS_PROCESSING, files_pb2.JOB_STATUS_SUCCEEDED
    current = _job(files_pb2.JOB_STATUS_QUEUED, 0, 0, at=100)
    for change in (
        _job(processing, 1, 1, at=41),
        _job(processing, 1, 50, at=45),
        _job(succeeded, 1, 100, at=50),
    ):
        assert _newer(change, current)
        current = change


def test_a_notice_older_than_what_the_watcher_read_is_not_sent() -> None:
    processing = files_pb2.JOB_STATUS_PROCESSING
    read = _job(processing, 1, 50, at=110)
    assert not _newer(_job(processing, 1, 40, at=105), read)
    assert not _newer(_job(files_pb2.JOB_STATUS_QUEUED, 0, 0, at=100), read)


def test_a_long_video_shows_smooth_progress_through_watchjob(
    stack: Stack, long_video: Path
) -> None:
    """40 minutes of media: the watcher sees many small steps from 0 to 100, each one a
    notice the converter published at most every 250 ms."""
    client, _ = stack.new_user()
    job = client.upload(long_video)
    notices = Notices(stack, job.id)
    try:
        updates = list(client.watch(job.id, timeout=300))
        time.sleep(0.5)  # the last notices reach the test's queue
        published = notices.collect()
    finally:
        notices.close()
    assert updates[-1].status == files_pb2.JOB_STATUS_SUCCEEDED, updates[-1].error
    percents = [u.progress_percent for u in updates]
    assert percents == sorted(percents) and percents[-1] == 100
    converting = [p for p in percents if PROGRESS_FFMPEG_START < p < PROGRESS_FFMPEG_END]
    print(f"{len(updates)} updates, percentages {percents}")
    assert len(set(converting)) >= 5, percents
    assert max(b - a for a, b in itertools.pairwise(percents)) <= 50, percents

    assert published[-1].status == files_pb2.JOB_STATUS_SUCCEEDED
    ffmpeg_steps = [
        j.update_time.ToMilliseconds() / 1000
        for j in published
        if j.status == files_pb2.JOB_STATUS_PROCESSING and j.progress_percent >= 5
    ]
    gaps = [b - a for a, b in itertools.pairwise(ffmpeg_steps)]
    assert gaps and min(gaps) >= 0.24, gaps


@pytest.fixture
def idle_job(stack: Stack) -> Iterator[tuple[files_pb2.Job, object]]:
    """A job record no converter will touch (never queued), owned by a new user, with a
    client of that user."""
    client, _ = stack.new_user()
    owner = client.upload(Path(__file__)).owner_id  # any upload tells the owner id
    job = jobs.new_job(
        job_id=ObjectId(), owner_id=owner, owner_email="", filename="idle.mp4", size=1, sha256=""
    )
    stack.mongo()[stack.env["MONGO_DB"]][jobs.COLLECTION].insert_one(job)
    yield jobs.to_proto(job), client


def _announce(stack: Stack, job: files_pb2.Job) -> None:
    exchange = stack.env["JOB_EVENTS_EXCHANGE"]
    publish_notice(AMQP_URL, exchange, job.id, events_pb2.JobChanged(job=job))


def test_watchjob_is_fed_by_the_notices_not_the_record(stack: Stack, idle_job) -> None:  # type: ignore[no-untyped-def]
    """The record stays QUEUED; the watcher still sees what the notices say (later ones
    only), and its stream ends with the final one."""
    job, client = idle_job
    seen: list[files_pb2.Job] = []
    watching = threading.Thread(target=lambda: seen.extend(client.watch(job.id, timeout=120)))
    watching.start()
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and seen[0].status == files_pb2.JOB_STATUS_QUEUED

    later = job.update_time.ToMilliseconds() + 1000
    converting, stale, finished = (files_pb2.Job() for _ in range(3))
    for notice, status, progress, millis in (
        (converting, files_pb2.JOB_STATUS_PROCESSING, 42, later),
        (stale, files_pb2.JOB_STATUS_PROCESSING, 7, later - 500),
        (finished, files_pb2.JOB_STATUS_SUCCEEDED, 100, later + 1000),
    ):
        notice.CopyFrom(job)
        notice.status, notice.progress_percent = status, progress
        notice.update_time.FromMilliseconds(millis)
    for notice in (converting, stale):
        _announce(stack, notice)
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    _announce(stack, finished)
    watching.join(60)
    assert not watching.is_alive(), "the stream ends with the final notice"
    assert [(j.status, j.progress_percent) for j in seen] == [
        (files_pb2.JOB_STATUS_QUEUED, 0),
        (files_pb2.JOB_STATUS_PROCESSING, 42),
        (files_pb2.JOB_STATUS_SUCCEEDED, 100),
    ]
