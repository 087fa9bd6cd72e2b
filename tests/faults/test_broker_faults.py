"""The broker and the stores cut off or hung under running work, injected for real.

RabbitMQ and PostgreSQL are shared by the machine's other test runs, so they are never
stopped: the services under test reach them through a TCP proxy the test owns, and the
test cuts that (every connection dropped, new ones refused). The MongoDB stand-in is
this stack's own, so it is paused for real (SIGSTOP).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from bson import ObjectId

from devstack import PASSWORD, ServiceStack
from devstack.tcp_proxy import TcpProxy
from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.cli.client import upload_requests
from mp3mesh.core import gridfs_io, jobs
from mp3mesh.files.v1 import files_pb2
from tests.faults.helpers import (
    EXTRACTING,
    Tally,
    assert_converted_once,
    behind,
    job_record,
    proxy_to,
)

pytestmark = pytest.mark.faults


def test_gateway_killed_after_recording_the_job_still_converts(
    mesh: ServiceStack, tally: Tally, media: Path, broker_proxy: TcpProxy
) -> None:
    """The gateway records the job but cannot publish it (its broker is cut off), answers
    OK, and is SIGKILLed. The restarted gateway's outbox relay publishes the job."""
    amqp = {"AMQP_URL": behind(mesh.env["AMQP_URL"], broker_proxy)}
    with mesh.through(amqp, "gateway"):
        client = mesh.new_user()
        with broker_proxy.outage():
            job_id = tally.submitted(client.upload(media / "clip.mp4").id)
            assert "announce_at" in job_record(mesh, job_id), "recorded, not yet published"
            mesh.send("gateway", signal.SIGKILL)
            mesh.wait_exit("gateway")
        killed_at = time.monotonic()
        mesh.start("gateway")
        done = client.wait(job_id, timeout=120)
        print(f"job SUCCEEDED {time.monotonic() - killed_at:.1f} s after the gateway was killed")
        assert_converted_once(mesh, done, attempts=1)


def test_broker_cut_during_20_uploads_and_a_conversion_loses_and_doubles_nothing(
    mesh: ServiceStack, tally: Tally, media: Path, long_video: Path, broker_proxy: TcpProxy
) -> None:
    amqp = {"AMQP_URL": behind(mesh.env["AMQP_URL"], broker_proxy)}
    with mesh.through(amqp, "gateway", "converter", "notification"):
        client = mesh.new_user()
        converting = tally.submitted(client.upload(long_video).id)
        mesh.child("converter", EXTRACTING)
        with ThreadPoolExecutor(20) as pool:
            uploads = [pool.submit(client.upload, media / "clip.mp4") for _ in range(20)]
            while sum(u.done() for u in uploads) < 3:
                time.sleep(0.01)
            with broker_proxy.outage():
                in_flight = 20 - sum(u.done() for u in uploads)
                time.sleep(5)
        restored_at = time.monotonic()
        accepted = [tally.submitted(u.result().id) for u in uploads]  # raises if one was refused
        print(f"20 uploads answered OK; {in_flight} were in flight when the broker was cut off")
        for job_id in [*accepted, converting]:
            done = client.wait(job_id, timeout=300)
            assert_converted_once(mesh, done, attempts=1, last=job_id == converting)
        print(f"all 21 jobs SUCCEEDED {time.monotonic() - restored_at:.1f} s after the broker "
              f"came back")  # fmt: skip


def test_postgres_unreachable_at_login_is_unavailable_and_auth_recovers(
    mesh: ServiceStack,
) -> None:
    proxy = proxy_to(mesh.env["DATABASE_URL"])
    try:
        with mesh.through({"DATABASE_URL": behind(mesh.env["DATABASE_URL"], proxy)}, "auth"):
            client, email = mesh.new_account()
            with proxy.outage():
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as refused:
                    client.login(email, PASSWORD)
                answered_after = time.monotonic() - started
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            details = refused.value.details()  # type: ignore[attr-defined]
            assert "127.0.0.1" not in details and str(proxy.port) not in details
            print(f"login answered UNAVAILABLE {answered_after:.2f} s into the outage: {details}")
            assert answered_after < 10
            with proxy.outage():  # the same through the REST edge
                rest = httpx.post(f"{mesh.shim_url}/login", auth=(email, PASSWORD), timeout=30)
            assert rest.status_code == 503
            assert rest.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
            assert "127.0.0.1" not in rest.text
            assert client.login(email, PASSWORD), "auth recovers by itself"
    finally:
        proxy.stop()


def test_mongo_paused_mid_upload_is_unavailable_and_leaves_no_orphan_chunks(
    mesh: ServiceStack, long_video: Path
) -> None:
    client = mesh.new_user()
    user_id = client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=client.metadata).user.id
    paused_at: list[float] = []

    def pause_midway() -> Iterator[files_pb2.UploadRequest]:
        for n, request in enumerate(upload_requests(long_video)):
            if n == 20:  # 5 MiB in: some chunks are stored
                mesh.send("mongo", signal.SIGSTOP)
                paused_at.append(time.monotonic())
            yield request

    try:
        with pytest.raises(grpc.RpcError) as refused:
            client.files.Upload(pause_midway(), metadata=client.metadata, timeout=120)
        answered_after = time.monotonic() - paused_at[0]
    finally:
        mesh.send("mongo", signal.SIGCONT)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    details = refused.value.details()  # type: ignore[attr-defined]
    assert mesh.env["MONGO_PORT"] not in details
    print(f"upload answered UNAVAILABLE {answered_after:.1f} s after MongoDB was paused")
    # One deadline per store operation; the upload may be inside a couple of them.
    assert answered_after < 4 * int(mesh.env["MONGO_TIMEOUT_MS"]) / 1000
    [job_id] = [
        ObjectId(str(e["job_id"]))
        for e in mesh.log_events("gateway")
        if e["event"] == "upload discarded" and e.get("user_id") == user_id
    ]
    chunks = mesh.db()[f"{gridfs_io.VIDEOS}.chunks"]
    deadline = time.monotonic() + 60
    while chunks.find_one({"files_id": job_id}, {"n": 1}) is not None:
        assert time.monotonic() < deadline, "orphan chunks left after MongoDB came back"
        time.sleep(0.5)
    assert mesh.db()[jobs.COLLECTION].find_one({"_id": job_id}) is None


def test_gateway_sigterm_mid_upload_removes_the_unfinished_upload(
    mesh: ServiceStack, long_video: Path
) -> None:
    """An upload still streaming when the gateway's grace period ends is cancelled; its
    chunks are removed before the gateway closes its MongoDB client."""
    client = mesh.new_user()
    user_id = client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=client.metadata).user.id
    stopped: list[float] = []

    def slow_upload() -> Iterator[files_pb2.UploadRequest]:
        for n, request in enumerate(upload_requests(long_video)):
            if n == 8:
                mesh.send("gateway", signal.SIGTERM)
                stopped.append(time.monotonic())
            if n >= 8:
                time.sleep(0.2)  # never finishes within the grace period
            yield request

    with pytest.raises(grpc.RpcError):
        client.files.Upload(slow_upload(), metadata=client.metadata, timeout=120)
    mesh.wait_exit("gateway")
    exited_after = time.monotonic() - stopped[0]
    print(f"gateway exited within {exited_after:.1f} s of SIGTERM")
    mesh.start("gateway")
    [job_id] = [
        ObjectId(str(e["job_id"]))
        for e in mesh.log_events("gateway")
        if e["event"] == "upload discarded" and e.get("user_id") == user_id
    ]
    assert mesh.db()[f"{gridfs_io.VIDEOS}.chunks"].find_one({"files_id": job_id}) is None
