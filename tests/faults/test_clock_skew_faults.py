"""A gateway whose clock runs 60 s ahead of the converter's (libfaketime on the gateway
alone), during a conversion that lasts about three minutes: the sweeper judges a lease by
the holder's renewals counted on its own monotonic clock, never by comparing the two
machines' wall clocks, so the healthy job is never taken back (mp3mesh/core/jobs.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from pathlib import Path

import psutil
import pytest

from devstack import ServiceStack
from mp3mesh.files.v1 import files_pb2
from tests.faults.helpers import (
    EXTRACTING,
    Tally,
    assert_converted_once,
    job_record,
    libfaketime,
)

pytestmark = pytest.mark.faults

# How long the conversion is made to last: many leases (LEASE_SECONDS=6 in the suite)
# and many housekeeping sweeps, at three times the skew.
CONVERSION_SECONDS = 180


def pace(mesh: ServiceStack, ffmpeg: psutil.Process, job_id: str, seconds: float) -> None:
    """Hold ffmpeg back (SIGSTOP, SIGCONT) so that the job's progress keeps to ``seconds``
    in all, as it would on a machine that much slower; returns when that time is up or
    ffmpeg ended, with ffmpeg running."""
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds and ffmpeg.is_running():
            progress = job_record(mesh, job_id).get("progress", 0)
            if progress >= 100 * elapsed / seconds:
                ffmpeg.suspend()
            else:
                ffmpeg.resume()
            time.sleep(0.2)
    except psutil.NoSuchProcess:
        pass
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            ffmpeg.resume()


def test_a_gateway_60_s_ahead_keeps_a_3_minute_conversion_on_its_first_attempt(
    mesh: ServiceStack, tally: Tally, long_video: Path
) -> None:
    skewed = {
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME": "+60",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # the skew is between wall clocks
    }
    try:
        mesh.restart("gateway", skewed)
        client = mesh.new_user()
        job_id = tally.submitted(client.upload(long_video).id)
        uploaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ffmpeg = mesh.child("converter", EXTRACTING)
        started = time.monotonic()
        pace(mesh, ffmpeg, job_id, CONVERSION_SECONDS)
        done = client.wait(job_id, timeout=300)
        took = time.monotonic() - started
        skew = (job_record(mesh, job_id)["created"] - uploaded_at).total_seconds()
        status = files_pb2.JobStatus.Name(done.status)
        print(f"the gateway's clock {skew:.1f} s ahead; the conversion took {took:.0f} s "
              f"and ended {status}, attempts {done.attempts}")  # fmt: skip
        assert skew > 30, "the gateway ran with its clock ahead"
        assert_converted_once(mesh, done, attempts=1)
    finally:
        mesh.restart("gateway", {})
