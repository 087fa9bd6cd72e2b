"""A cancel's announcement survives its gateway: the broker cut off from the gateway (a
TCP proxy the test owns) while a job is cancelled, a retry then refused until the
cancel's JobFinished is out, the gateway SIGKILLed; the restarted gateway's outbox relay
publishes it and the owner's receiver gets its ``job.cancelled``, with no mail."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from devstack import ServiceStack, wait_for
from devstack.ports import free_port
from devstack.tcp_proxy import TcpProxy
from mp3mesh.core import jobs
from mp3mesh.files.v1 import files_pb2
from tests.e2e.test_webhooks import Receiver
from tests.faults.helpers import Tally, _mailed_job, behind, job_record

pytestmark = pytest.mark.faults


def test_gateway_killed_after_recording_a_cancel_still_sends_job_cancelled(
    mesh: ServiceStack, tally: Tally, media: Path, broker_proxy: TcpProxy
) -> None:
    amqp = {"AMQP_URL": behind(mesh.env["AMQP_URL"], broker_proxy)}
    receiver = Receiver(free_port())
    with mesh.through(amqp, "gateway"):
        client = mesh.new_user()
        receiver.secret = client.create_webhook(receiver.url, ["job.cancelled"]).secret
        receiver.start()
        try:
            mesh.send("converter", signal.SIGSTOP)  # the job stays QUEUED
            try:
                job_id = tally.submitted(client.upload(media / "clip.mp4").id, jobs.CANCELLED)
                with broker_proxy.outage():
                    assert client.cancel(job_id).status == files_pb2.JOB_STATUS_CANCELLED
                    record = job_record(mesh, job_id)
                    assert record["announce_queue"] == mesh.env["MP3_QUEUE"], "still pending"
                    with pytest.raises(grpc.RpcError) as refused:
                        client.retry(job_id)
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert "try again" in (refused.value.details() or "")
                    assert job_record(mesh, job_id)["status"] == jobs.CANCELLED
                    mesh.send("gateway", signal.SIGKILL)
                    mesh.wait_exit("gateway")
                    killed_at = time.monotonic()
                mesh.start("gateway")
            finally:
                mesh.send("converter", signal.SIGCONT)
            wait_for(lambda: len(receiver.accepted) == 1, "job.cancelled after the restart", 120)
            ((at, event),) = receiver.accepted.values()
            print(f"\njob.cancelled received {at - killed_at:.1f} s after the gateway was killed")
            assert event["type"] == "job.cancelled" and event["data"]["job"]["id"] == job_id
            wait_for(lambda: "announce_queue" not in job_record(mesh, job_id), "mark cleared", 30)
        finally:
            receiver.stop()
    assert receiver.rejected == [] and receiver.duplicates == []
    after = job_record(mesh, job_id)
    assert (after["status"], after["attempts"]) == (jobs.CANCELLED, 0)
    assert job_id not in {_mailed_job(path) for path in mesh.mail_files()}
