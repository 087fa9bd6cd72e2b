"""Outages of the stores and servers the mesh depends on, injected for real."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devstack import ServiceStack
from mp3mesh.core.amqp.topology import dead_letter_queue
from mp3mesh.files.v1 import files_pb2
from tests.faults.helpers import Tally, mail_count

pytestmark = pytest.mark.faults

SMTP_OUTAGE_SECONDS = 60


def test_smtp_down_for_a_minute_every_mail_arrives_once_afterwards(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    client = mesh.new_user()
    mesh.stop("smtp")
    down_at = time.monotonic()
    job_ids = [tally.submitted(client.upload(media / "clip.mp4").id) for _ in range(3)]
    for job_id in job_ids:
        assert client.wait(job_id, timeout=120).status == files_pb2.JOB_STATUS_SUCCEEDED
    time.sleep(max(0.0, SMTP_OUTAGE_SECONDS - (time.monotonic() - down_at)))
    assert [mail_count(mesh, j) for j in job_ids] == [0, 0, 0]

    mesh.start("smtp")
    back_at = time.monotonic()
    deadline = back_at + 120
    while any(mail_count(mesh, j) == 0 for j in job_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"all mails arrived {time.monotonic() - back_at:.1f} s after SMTP came back")
    time.sleep(1)  # a duplicate would come right after
    assert [mail_count(mesh, j) for j in job_ids] == [1, 1, 1]
    assert mesh.queue_state(dead_letter_queue(mesh.env["MP3_QUEUE"]))[0] == 0
    retries = [
        e for e in mesh.log_events("notification") if e["event"] == "handler failed; retrying later"
    ]
    assert retries, "the mails waited in the retry queues"


def test_smtp_hung_the_mail_waits_and_arrives_once(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    """A blackholed SMTP server (paused: it accepts connections and never answers) costs
    one SMTP_TIMEOUT_SECONDS per try; the mail waits in the retry queues meanwhile."""
    client = mesh.new_user()
    with mesh.paused("smtp"):
        job_id = tally.submitted(client.upload(media / "clip.mp4").id)
        assert client.wait(job_id, timeout=120).status == files_pb2.JOB_STATUS_SUCCEEDED
        deadline = time.monotonic() + 60
        while not _timed_out(mesh, job_id):
            assert time.monotonic() < deadline, "the notification never tried (or never timed out)"
            time.sleep(0.5)
    resumed_at = time.monotonic()
    deadline = resumed_at + 60
    while mail_count(mesh, job_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"mail arrived {time.monotonic() - resumed_at:.1f} s after SMTP answered again")
    time.sleep(1)
    assert mail_count(mesh, job_id) == 1


def _timed_out(mesh: ServiceStack, job_id: str) -> bool:
    """Whether the notification service logged a timed-out try for this job's mail."""
    return any(
        e["event"] == "handler failed; retrying later"
        and "timed out" in str(e.get("reason")).lower()
        for e in mesh.log_events("notification")
    )


def test_notification_stopped_while_smtp_hangs_exits_in_its_grace_and_mails_once_later(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    """SIGTERM while a send waits on an SMTP server that never answers: the send is cut,
    the mail goes back to the queue, the service exits cleanly within its grace period
    (not killed by it), and the mail goes out once after the restart."""
    client = mesh.new_user()
    with mesh.paused("smtp"):
        job_id = tally.submitted(client.upload(media / "clip.mp4").id)
        assert client.wait(job_id, timeout=120).status == files_pb2.JOB_STATUS_SUCCEEDED
        time.sleep(1)  # the notification is waiting for the server's greeting
        exited_after = mesh.stop("notification")
        print(f"notification exited {exited_after:.2f} s after SIGTERM, mid-send")
        assert mesh.processes["notification"].returncode == 0, "stopped, not cut off"
        assert exited_after < float(mesh.env.get("STOP_GRACE_SECONDS", 4))
        put_back = [e for e in mesh.log_events("notification") if e["event"] == "message put back"]
        assert put_back, "the send in progress was cut and its message put back"
        mesh.start("notification")
    deadline = time.monotonic() + 60
    while mail_count(mesh, job_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    assert mail_count(mesh, job_id) == 1
