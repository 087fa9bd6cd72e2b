"""Faults around a conversion: the converter or its ffmpeg signalled or killed mid-job.

How each way ffmpeg can end is classified is in mp3mesh/converter/transcode.py: our shutdown puts
the job back without counting an attempt; a signal from elsewhere or our own timeout is
transient (retried); ffmpeg refusing the data fails the job with its reason.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from devstack import ServiceStack
from mp3mesh.core import jobs
from mp3mesh.files.v1 import files_pb2
from tests.faults.helpers import EXTRACTING, Tally, assert_converted_once, job_record, mail_count

pytestmark = pytest.mark.faults


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT-to-process-group", "SIGTERM-to-converter-only"],
)
def test_converter_signalled_mid_conversion_requeues_the_jobs_for_the_next_start(
    mesh: ServiceStack, tally: Tally, long_video: Path, sig: signal.Signals, group: bool
) -> None:
    """Two conversions at once (CONCURRENT_CONVERSIONS=2): both ffmpegs are stopped and
    both jobs go back to the queue without an attempt counted."""
    client = mesh.new_user()
    job_ids = [tally.submitted(client.upload(long_video).id) for _ in range(2)]
    ffmpegs = mesh.children("converter", EXTRACTING, 2)

    mesh.send("converter", sig, group=group)
    exited_after = mesh.wait_exit("converter", timeout=30)
    print(f"converter exited {exited_after:.2f} s after {sig.name} (group={group})")
    assert exited_after < 5
    for ffmpeg in ffmpegs:
        ffmpeg.wait(5)  # stopped by the converter, not left running as an orphan
        assert not ffmpeg.is_running()
    for job_id in job_ids:
        record = job_record(mesh, job_id)
        assert (record["status"], record["attempts"]) == (jobs.QUEUED, 0), "no attempt burnt"

    restarted_at = time.monotonic()
    mesh.start("converter")
    for n, job_id in enumerate(job_ids):
        done = client.wait(job_id, timeout=300)
        assert_converted_once(mesh, done, attempts=1, last=n == len(job_ids) - 1)
    print(f"both SUCCEEDED {time.monotonic() - restarted_at:.1f} s after the restart")


def test_converter_killed_mid_conversion_then_restarted_converts_the_job_once(
    mesh: ServiceStack, tally: Tally, long_video: Path
) -> None:
    """SIGKILL: no shutdown code runs. The broker hands the message back, the lease of
    the dead converter runs out, the restarted one takes the job over; its startup sweep
    removes the temp directory (with the whole video) the dead one left."""
    client = mesh.new_user()
    job_id = tally.submitted(client.upload(long_video).id)
    ffmpeg = mesh.child("converter", EXTRACTING)
    mesh.send("converter", signal.SIGKILL)
    mesh.wait_exit("converter")
    ffmpeg.wait(10)  # the kernel kills it with its parent (PR_SET_PDEATHSIG)
    assert not ffmpeg.is_running(), "ffmpeg outlived its converter"
    killed_at = time.monotonic()

    mesh.start("converter")
    done = client.wait(job_id, timeout=300)
    print(f"job SUCCEEDED {time.monotonic() - killed_at:.1f} s after the converter was killed")
    assert_converted_once(mesh, done, attempts=2)


def test_ffmpeg_killed_mid_conversion_is_retried(
    mesh: ServiceStack, tally: Tally, long_video: Path
) -> None:
    client = mesh.new_user()
    job_id = tally.submitted(client.upload(long_video).id)
    mesh.child("converter", EXTRACTING).kill()  # as the OOM killer would
    killed_at = time.monotonic()

    done = client.wait(job_id, timeout=300)
    print(f"job SUCCEEDED {time.monotonic() - killed_at:.1f} s after ffmpeg was killed")
    assert_converted_once(mesh, done, attempts=2)
    events = [e for e in mesh.log_events("converter") if "SIGKILL" in str(e.get("exception"))]
    assert events, "the retry says why: ffmpeg was killed by SIGKILL"


def test_a_text_file_fails_at_once_with_its_reason(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    client = mesh.new_user()
    job_id = tally.submitted(client.upload(media / "notes.txt").id, jobs.FAILED)
    done = client.wait(job_id, timeout=120)
    assert done.status == files_pb2.JOB_STATUS_FAILED
    assert done.attempts == 1, "refused data is not retried"
    assert "not a video ffmpeg can read" in done.error
    deadline = time.monotonic() + 30
    while not mail_count(mesh, job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mail_count(mesh, job_id) == 1
