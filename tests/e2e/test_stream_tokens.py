"""A stream outlives no token (issue 23, item 6): a WatchJob or an Upload whose token is
revoked or expires ends within 30 s with UNAUTHENTICATED, and the upload is removed. The
real mesh: MongoDB stand-in, auth, the gateway (no converter: jobs stay QUEUED, so a
WatchJob goes on until something ends it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from bson import ObjectId

from devstack import PASSWORD, ServiceStack, make_video, service_stack
from mp3mesh.cli.client import MeshClient, upload_requests
from mp3mesh.core import gridfs_io, jobs
from mp3mesh.core.tokens import EXPIRED
from mp3mesh.core.verification import REVOKED
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.store import UPLOADS

pytestmark = pytest.mark.e2e

TOKEN_TTL_SECONDS = 20
BOUND_SECONDS = 30  # the issue's


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("streams"),
        ("mongo", "auth", "gateway"),
        TOKEN_TTL_SECONDS=str(TOKEN_TTL_SECONDS),
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", 4)


def _ended(stream: Iterator[files_pb2.WatchJobResponse]) -> grpc.RpcError:
    try:
        for _ in stream:
            pass
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the stream ended without an error")


def _log_out(mesh: ServiceStack, token: str) -> None:
    with MeshClient(mesh.env["AUTH_LISTEN"], mesh.env["GATEWAY_LISTEN"]) as other:
        other.token = token
        other.logout()


def test_a_watch_ends_when_its_token_is_revoked(mesh: ServiceStack, video: Path) -> None:
    client = mesh.new_user()
    job = client.upload(video)
    stream = client.files.WatchJob(
        files_pb2.WatchJobRequest(job_id=job.id), metadata=client.metadata, timeout=120
    )
    assert next(stream).job.status == files_pb2.JOB_STATUS_QUEUED
    _log_out(mesh, client.token)
    logged_out = time.monotonic()
    ended = _ended(stream)
    took = time.monotonic() - logged_out
    print(f"WatchJob ended {took:.2f} s after the logout")
    assert (ended.code(), ended.details()) == (grpc.StatusCode.UNAUTHENTICATED, REVOKED)  # type: ignore[attr-defined]
    assert took < BOUND_SECONDS


def test_a_watch_ends_when_its_token_expires(mesh: ServiceStack, video: Path) -> None:
    client, email = mesh.new_account()
    expires = client.login_reply(email, PASSWORD).expire_time.seconds
    job = client.upload(video)
    stream = client.files.WatchJob(
        files_pb2.WatchJobRequest(job_id=job.id), metadata=client.metadata, timeout=120
    )
    ended = _ended(stream)
    late = time.time() - expires
    print(f"WatchJob ended {late:.2f} s after its token expired")
    assert (ended.code(), ended.details()) == (grpc.StatusCode.UNAUTHENTICATED, EXPIRED)  # type: ignore[attr-defined]
    assert -1 <= late < BOUND_SECONDS


def test_an_upload_ends_when_its_token_is_revoked_and_is_removed(
    mesh: ServiceStack, video: Path
) -> None:
    client = mesh.new_user()
    token = client.token
    resume = threading.Event()

    def stalled() -> Iterator[files_pb2.UploadRequest]:
        requests = upload_requests(video)
        yield next(requests)  # the metadata
        yield next(requests)  # the first bytes, stored
        resume.wait(BOUND_SECONDS * 2)
        yield from requests

    def upload() -> grpc.RpcError | files_pb2.UploadResponse:
        try:
            return client.files.Upload(stalled(), metadata=client.metadata, timeout=120)
        except grpc.RpcError as exc:
            return exc

    uploads = mesh.db()[UPLOADS]
    before = {mark["_id"] for mark in uploads.find({}, {"_id": 1})}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(upload)
        deadline = time.monotonic() + 60
        while not (started := {m["_id"] for m in uploads.find({}, {"_id": 1})} - before):
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.05)
        (job_id,) = started
        _log_out(mesh, token)
        logged_out = time.monotonic()
        try:
            ended = answer.result(BOUND_SECONDS * 2)
        finally:
            resume.set()
    took = time.monotonic() - logged_out
    print(f"Upload ended {took:.2f} s after the logout")
    assert isinstance(ended, grpc.RpcError), ended
    assert (ended.code(), ended.details()) == (grpc.StatusCode.UNAUTHENTICATED, REVOKED)  # type: ignore[attr-defined]
    assert took < BOUND_SECONDS
    chunks = mesh.db()[f"{gridfs_io.VIDEOS}.chunks"]
    deadline = time.monotonic() + 60
    while chunks.find_one({"files_id": ObjectId(job_id)}, {"n": 1}) is not None:
        assert time.monotonic() < deadline, "the upload's chunks were left"
        time.sleep(0.2)
    assert mesh.db()[jobs.COLLECTION].find_one({"_id": ObjectId(job_id)}) is None
    assert uploads.find_one({"_id": job_id}) is None
