"""Webhook delivery against a receiver that hangs, with the notification service stopped
mid-try: the try is cut, its message goes back to the queue, the service exits cleanly
within its grace period, and the event is delivered once after the restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import ServiceStack, wait_for
from devstack.ports import free_port
from mp3mesh.core import jobs
from mp3mesh.files.v1 import files_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2
from tests.e2e.test_webhooks import Receiver
from tests.faults.helpers import Tally

pytestmark = pytest.mark.faults


def test_notification_stopped_mid_try_exits_in_its_grace_and_delivers_once_later(
    mesh: ServiceStack, tally: Tally, media: Path
) -> None:
    client = mesh.new_user()
    receiver = Receiver(free_port())
    receiver.secret = client.create_webhook(receiver.url).secret
    receiver.stalled.set()
    receiver.start()
    try:
        job_id = tally.submitted(client.upload(media / "notes.txt").id, jobs.FAILED)
        assert client.wait(job_id, timeout=120).status == files_pb2.JOB_STATUS_FAILED
        wait_for(lambda: bool(receiver.stalls), "the try waiting on the receiver", 60)
        exited_after = mesh.stop("notification")
        print(f"notification exited {exited_after:.2f} s after SIGTERM, mid-try")
        assert mesh.processes["notification"].returncode == 0, "stopped, not cut off"
        assert exited_after < float(mesh.env.get("STOP_GRACE_SECONDS", 4))
        put_back = [
            e
            for e in mesh.log_events("notification")
            if e["event"] == "message put back" and e.get("queue") == mesh.env["WEBHOOK_QUEUE"]
        ]
        assert put_back, "the try in progress was cut and its message put back"
        (delivery,) = client.job(job_id).webhook_deliveries
        assert delivery.state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_PENDING

        receiver.stalled.clear()
        receiver.released.set()
        mesh.start("notification")

        def delivered() -> bool:
            (d,) = client.job(job_id).webhook_deliveries
            return d.state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED

        wait_for(delivered, "the event delivered after the restart", 60)
    finally:
        receiver.released.set()
        receiver.stop()
    (delivery,) = client.job(job_id).webhook_deliveries
    assert list(receiver.accepted) == [delivery.message_id] == receiver.stalls
    assert delivery.attempts == 1  # the cut try was not counted
    assert receiver.rejected == [] and receiver.duplicates == []
