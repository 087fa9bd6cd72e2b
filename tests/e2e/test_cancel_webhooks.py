"""``job.cancelled`` on the real stack: a cancel announces the job's end through the
gateway's outbox (JobFinished, CANCELLED), the notification service queues the owner's
``job.cancelled`` webhooks and mails nothing. A real receiver verifies each Standard
Webhooks signature (tests/e2e/test_webhooks.py's Receiver); mails are read from the
stack's SMTP server's maildir."""

from __future__ import annotations

from pathlib import Path

from devstack import Stack, wait_for
from devstack.ports import free_port
from mp3mesh.files.v1 import files_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2
from tests.e2e.test_webhooks import Receiver, _deliveries

DELIVERED = webhooks_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED


def test_a_cancel_sends_job_cancelled_and_no_mail(
    stack: Stack, media: Path, long_video: Path
) -> None:
    client, _ = stack.new_user()
    receiver = Receiver(free_port())
    hook = client.create_webhook(receiver.url, ["job.cancelled"])
    receiver.secret = hook.secret
    receiver.start()
    try:
        # QUEUED: no converter takes it while it is cancelled.
        converter = stack.service_process("converter")
        converter.suspend()
        try:
            queued = client.upload(media / "clip.mp4").id
            assert client.cancel(queued).status == files_pb2.JOB_STATUS_CANCELLED
        finally:
            converter.resume()
        # PROCESSING: ffmpeg under way.
        running = client.upload(long_video, content_type="video/x-msvideo").id
        wait_for(lambda: client.job(running).progress_percent > 5, "ffmpeg under way", 120)
        assert client.cancel(running).status == files_pb2.JOB_STATUS_CANCELLED
        # Cancelled, then deleted at once: the event still goes out, nothing breaks.
        gone = client.upload(media / "clip.mp4").id
        client.cancel(gone)
        client.delete(gone)

        wait_for(lambda: len(receiver.accepted) == 3, "three job.cancelled received", 120)
        events = {e["data"]["job"]["id"]: e for _, e in receiver.accepted.values()}
        assert set(events) == {queued, running, gone}
        for event in events.values():
            assert event["type"] == "job.cancelled"
            job = event["data"]["job"]
            assert job["status"] == "JOB_STATUS_CANCELLED" and job["ownerId"]
            assert job["error"] == "cancelled by its owner" and "mp3FileId" not in job
        assert not receiver.rejected and not receiver.duplicates
        for job_id in (queued, running):
            (delivery,) = _deliveries(client, job_id)
            assert (delivery.event_type, delivery.webhook_id) == ("job.cancelled", hook.id)
            wait_for(lambda j=job_id: _deliveries(client, j)[0].state == DELIVERED,
                     "delivery logged", 30)  # fmt: skip
            assert client.job(job_id).status == files_pb2.JOB_STATUS_CANCELLED

        # Cancelled, retried, cancelled again: a second event, under a new webhook-id.
        assert client.retry(running).status == files_pb2.JOB_STATUS_QUEUED
        assert client.cancel(running).status == files_pb2.JOB_STATUS_CANCELLED
        wait_for(lambda: len(receiver.accepted) == 4, "the second job.cancelled", 120)
        again = [e for _, e in receiver.accepted.values() if e["data"]["job"]["id"] == running]
        assert [e["type"] for e in again] == ["job.cancelled"] * 2
        assert len(_deliveries(client, running)) == 2

        # A retry after the cancel runs to its end and is mailed (its status is no
        # job.cancelled: the endpoint asked for nothing else).
        assert client.retry(queued).status == files_pb2.JOB_STATUS_QUEUED
        assert client.wait(queued, timeout=180).status == files_pb2.JOB_STATUS_SUCCEEDED
        stack.wait_for_mail(queued)
        # The cancels' JobFinished were handled long before that success's: a mail for
        # any of them would be in the maildir by now.
        assert len(stack.mails(queued)) == 1, "the success only, no mail for the cancel"
        assert stack.mails(queued)[0]["Subject"].startswith("Your MP3 is ready")
        assert not stack.mails(running) and not stack.mails(gone)
        assert len(receiver.accepted) == 4 and not receiver.duplicates
    finally:
        receiver.stop()
