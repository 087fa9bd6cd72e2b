"""Who owns a job when its holder stalls, the store stalls or the broker drops everyone:
the claim's fencing, the lease judged on the sweeper's own clock, and the result's outbox
(mp3mesh/core/jobs.py, mp3mesh/converter/claim.py, mp3mesh/gateway/relay.py), injected for real."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import psutil
import pytest

from devstack import AMQP_URL, ServiceStack, wait_for
from devstack.tcp_proxy import TcpProxy
from mp3mesh.core.amqp.topology import retry_queue
from mp3mesh.files.v1 import files_pb2
from tests.faults.helpers import (
    EXTRACTING,
    Tally,
    assert_converted_once,
    behind,
    job_record,
    libfaketime,
    mail_count,
)
from tests.helpers import ffprobe

pytestmark = pytest.mark.faults

LONG_VIDEO_SECONDS = 2400  # tests/conftest.py, long_video


@pytest.fixture
def two_converters(mesh: ServiceStack) -> Iterator[tuple[str, str]]:
    """Two converters of one conversion each, so a second delivery of a job reaches the
    converter that is not busy with it."""
    one = {"CONCURRENT_CONVERSIONS": "1"}
    try:
        mesh.restart("converter", one)
        mesh.start_another(
            "converter-b", like="converter", env={**one, "CONVERTER_METRICS_PORT": "0"}
        )
        yield "converter", "converter-b"
    finally:
        second = mesh.processes.get("converter-b")
        if second is not None and second.poll() is None:
            mesh.stop("converter-b")
        mesh.restart("converter", {})


def converting(mesh: ServiceStack, names: tuple[str, ...], timeout: float = 120) -> str:
    """Which of the converters ``names`` runs an extraction (waits for one to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in names:
            if extractions(mesh, name):
                return name
        time.sleep(0.05)
    raise AssertionError(f"none of {names} started ffmpeg within {timeout} s")


def extractions(mesh: ServiceStack, name: str) -> list[psutil.Process]:
    return mesh.running(name, EXTRACTING)


def test_a_converter_frozen_past_its_lease_loses_the_job_and_changes_nothing(
    mesh: ServiceStack, tally: Tally, long_video: Path, two_converters: tuple[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """SIGSTOP the converting converter and its ffmpeg past the lease: the sweeper puts
    the job back, the other converter takes it over; SIGCONT the first while the second
    works. The first learns it lost the job (its renewal matches nothing), stops its
    ffmpeg and leaves nothing; the job ends SUCCEEDED once, with one whole MP3, one mail."""
    client = mesh.new_user()
    job_id = tally.submitted(client.upload(long_video).id)
    frozen = converting(mesh, two_converters)
    [other] = [name for name in two_converters if name != frozen]
    ffmpeg = extractions(mesh, frozen)[0]
    first_claim = job_record(mesh, job_id)["claim"]
    mesh.send(frozen, signal.SIGSTOP)
    ffmpeg.suspend()
    frozen_at = time.monotonic()

    taken_over_after = None
    try:
        wait_for(lambda: job_record(mesh, job_id)["claim"] not in (None, first_claim),
                 "the other converter takes the job over", timeout=90)  # fmt: skip
        taken_over_after = time.monotonic() - frozen_at
        wait_for(lambda: bool(extractions(mesh, other)), "the other converter runs ffmpeg", 60)
    finally:
        ffmpeg.resume()
        mesh.send(frozen, signal.SIGCONT)
    resumed_at = time.monotonic()
    ffmpeg.wait(15)  # stopped by its own converter: the lease is lost
    stopped_after = time.monotonic() - resumed_at
    assert extractions(mesh, other), "the second converter is still converting"

    done = client.wait(job_id, timeout=300)
    settled_after = time.monotonic() - frozen_at
    print(f"taken over {taken_over_after:.1f} s after the freeze; the frozen converter's "
          f"ffmpeg stopped {stopped_after:.1f} s after SIGCONT; SUCCEEDED "
          f"{settled_after:.1f} s after the freeze")  # fmt: skip
    assert_converted_once(mesh, done, attempts=2)
    events = mesh.log_events(frozen)
    lost = [e for e in events if e.get("job_id") == job_id and e["event"].startswith("job lost")]
    assert len(lost) == 1, "the frozen converter learnt it lost the job, and dropped it"
    mp3 = tmp_path / "taken-over.mp3"
    assert client.download(done.mp3_file_id, mp3) == done.mp3_size_bytes
    duration = float(ffprobe(mp3)["format"]["duration"])
    assert abs(duration - LONG_VIDEO_SECONDS) < 1, duration


def test_mongodb_paused_12_s_during_ffmpeg_costs_no_attempt(
    mesh: ServiceStack, tally: Tally, long_video: Path
) -> None:
    """The holders cannot renew while MongoDB is paused, and the sweeper cannot watch:
    time nobody could see does not expire a lease. Progress writes fail and the
    conversions go on; the MP3s and SUCCEEDED are written once MongoDB answers."""
    client = mesh.new_user()
    job_ids = [tally.submitted(client.upload(long_video).id) for _ in range(2)]
    mesh.children("converter", EXTRACTING, 2)
    with mesh.paused("mongo"):
        time.sleep(12)
    resumed_at = time.monotonic()
    for n, job_id in enumerate(job_ids):
        done = client.wait(job_id, timeout=300)
        print(f"job SUCCEEDED {time.monotonic() - resumed_at:.1f} s after MongoDB resumed")
        assert_converted_once(mesh, done, attempts=1, last=n == len(job_ids) - 1)
    assert extractions(mesh, "converter") == [], "no ffmpeg left"


def test_broker_connections_closed_during_a_conversion_mail_within_30_s(
    mesh: ServiceStack, tally: Tally, long_video: Path, broker_proxy: TcpProxy
) -> None:
    """Every broker connection dropped mid-conversion (what `rabbitmqctl
    close_all_connections` does, on this stack's connections only). The converter's
    retry delays are long here, as in production: the result must not wait on them."""
    amqp = {"AMQP_URL": behind(mesh.env["AMQP_URL"], broker_proxy)}
    long_retries = {**amqp, "RETRY_DELAYS_SECONDS": "[60, 600]"}
    try:
        with mesh.through(amqp, "gateway", "notification"):
            mesh.restart("converter", long_retries)
            client = mesh.new_user()
            job_id = tally.submitted(client.upload(long_video).id)
            mesh.child("converter", EXTRACTING)
            broker_proxy.cut()
            cut_at = time.monotonic()
            broker_proxy.restore()
            done = client.wait(job_id, timeout=300)
            succeeded_at = time.monotonic()
            wait_for(lambda: mail_count(mesh, job_id) > 0, "the mail", timeout=30)
            print(f"SUCCEEDED {succeeded_at - cut_at:.1f} s after the cut, mail "
                  f"{time.monotonic() - succeeded_at:.1f} s after SUCCEEDED")  # fmt: skip
            assert done.status == files_pb2.JOB_STATUS_SUCCEEDED
            assert_converted_once(mesh, done, attempts=1)
    finally:
        mesh.restart("converter", {})
        _delete_queues(*(retry_queue(mesh.env["VIDEO_QUEUE"], d) for d in (60, 600)))


def _delete_queues(*names: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    for name in names:
        channel.queue_delete(name)
    conn.close()


def test_a_converter_60_s_behind_the_gateway_keeps_its_job(
    mesh: ServiceStack, tally: Tally, long_video: Path
) -> None:
    """The converter's clock 60 s behind the gateway's, ten times the lease: no lease is
    judged by comparing the two, so the job is converted once, attempts 1."""
    skewed = {
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME": "-60",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # the skew is between wall clocks
    }
    try:
        mesh.restart("converter", skewed)
        client = mesh.new_user()
        job_id = tally.submitted(client.upload(long_video).id)
        uploaded_at = time.monotonic()
        done = client.wait(job_id, timeout=300)
        print(f"job SUCCEEDED {time.monotonic() - uploaded_at:.1f} s after its upload")
        assert_converted_once(mesh, done, attempts=1)
        record = job_record(mesh, job_id)
        skew = (record["created"] - record["updated"]).total_seconds()
        print(f"the converter recorded the job finished {skew:.1f} s before the gateway "
              f"created it")  # fmt: skip
        assert skew > 30, "the converter ran with its clock behind"
    finally:
        mesh.restart("converter", {})


def test_a_job_whose_message_was_lost_is_announced_again_and_converted(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    """The job's message is gone from the broker (purged here; a give-up that failed in a
    MongoDB outage leaves the same): the job waits QUEUED with nothing to deliver it, until
    housekeeping announces it again."""
    patience = 5
    try:
        mesh.restart("gateway", {"QUEUED_JOB_PATIENCE_SECONDS": str(patience)})
        mesh.stop("converter")
        client = mesh.new_user()
        job_id = tally.submitted(client.upload(media / "clip.mp4").id)
        wait_for(lambda: "announce_at" not in job_record(mesh, job_id), "the announcement", 30)
        _purge(mesh.env["VIDEO_QUEUE"])
        lost_at = time.monotonic()
        mesh.start("converter")
        done = client.wait(job_id, timeout=120)
        print(f"job SUCCEEDED {time.monotonic() - lost_at:.1f} s after its message was lost")
        assert_converted_once(mesh, done, attempts=1)
    finally:
        if mesh.processes["converter"].poll() is not None:
            mesh.start("converter")
        mesh.restart("gateway", {})


def _purge(queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_purge(queue)
    conn.close()
