"""Per-client bounds on the real auth and gateway (no converter: uploaded jobs stay
QUEUED, so their WatchJob streams stay open): concurrent calls per server, uploads and
watches per user, upload idle and total deadlines, messages without bytes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from devstack import ServiceStack, service_stack
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.cli.client import MeshClient
from mp3mesh.core import gridfs_io
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc

CONCURRENT_RPCS = 12
UPLOADS_PER_USER = 2
WATCHES_PER_USER = 3
IDLE = 5
TOTAL = 20
MAX_EMPTY = 20


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("bounds"),
        ("mongo", "auth", "gateway"),
        MAX_CONCURRENT_RPCS=str(CONCURRENT_RPCS),
        MAX_UPLOADS_PER_USER=str(UPLOADS_PER_USER),
        MAX_WATCHES_PER_USER=str(WATCHES_PER_USER),
        UPLOAD_IDLE_SECONDS=str(IDLE),
        UPLOAD_TOTAL_SECONDS=str(TOTAL),
        MAX_EMPTY_UPLOAD_MESSAGES=str(MAX_EMPTY),
    ) as stack:
        yield stack


def _stored_videos(mesh: ServiceStack) -> int:
    return len(list(mesh.db()[f"{gridfs_io.VIDEOS}.files"].find({}, {"_id": 1})))


def test_a_server_refuses_calls_past_its_concurrency_limit(mesh: ServiceStack) -> None:
    """Logins at once, from addresses and accounts of their own so no login limit
    applies: past MAX_CONCURRENT_RPCS, auth refuses before doing any work."""

    def login(i: int) -> str:
        with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
            try:
                auth_pb2_grpc.AuthServiceStub(channel).Login(
                    auth_pb2.LoginRequest(email=f"c{i}@example.com", password="guess"),
                    metadata=((CLIENT_ADDRESS_KEY, f"192.0.2.{i}"),),
                    timeout=120,
                )
            except grpc.RpcError as exc:
                return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        return "OK"

    with ThreadPoolExecutor(60) as pool:
        answers = Counter(pool.map(login, range(60)))
    assert answers["RESOURCE_EXHAUSTED: Concurrent RPC limit exceeded!"] > 0, answers
    assert answers["UNAUTHENTICATED: email or password is incorrect"] > 0, answers


def _queued_job(mesh: ServiceStack, tmp_path: Path) -> tuple[MeshClient, str]:
    client = mesh.new_user()
    video = tmp_path / f"{uuid.uuid4().hex}.mp4"
    video.write_bytes(b"not really a video, and nothing converts it" * 100)
    return client, client.upload(video).id


def _until(ok: Callable[[], bool], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not ok():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_watches_per_user_are_bounded(mesh: ServiceStack, tmp_path: Path) -> None:
    client, job_id = _queued_job(mesh, tmp_path)

    def watch() -> grpc.Future:
        request = files_pb2.WatchJobRequest(job_id=job_id)
        return client.files.WatchJob(request, metadata=client.metadata, timeout=120)

    streams = [watch() for _ in range(WATCHES_PER_USER)]
    assert all(next(s).job.status == files_pb2.JOB_STATUS_QUEUED for s in streams)
    with pytest.raises(grpc.RpcError) as exc:
        next(watch())
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"you already have {WATCHES_PER_USER} watches open" in exc.value.details()
    other, other_job = _queued_job(mesh, tmp_path)  # another user is not affected
    next(other.files.WatchJob(files_pb2.WatchJobRequest(job_id=other_job), metadata=other.metadata))
    streams.pop().cancel()

    def one_more() -> bool:
        try:
            streams.append(watch())
            next(streams[-1])
        except grpc.RpcError:
            streams.pop()
            return False
        return True

    _until(one_more)  # the cancelled watch's place is free again
    for s in streams:
        s.cancel()


async def _upload(
    mesh: ServiceStack, token: str, messages: AsyncIterator[files_pb2.UploadRequest]
) -> grpc.aio.StreamUnaryCall:
    channel = grpc.aio.insecure_channel(mesh.env["GATEWAY_LISTEN"])
    call = files_pb2_grpc.FileServiceStub(channel).Upload(
        messages, metadata=(("authorization", f"Bearer {token}"),), timeout=120
    )
    await call.initial_metadata()  # accepted: authenticated, its handler runs
    return call


async def _dribble(
    stop: asyncio.Event | None = None, *, empty: int = 0, pause: float = 0.2
) -> AsyncIterator[files_pb2.UploadRequest]:
    """Metadata, ``empty`` messages without bytes, then a byte every ``pause`` seconds
    until ``stop`` (forever without one)."""
    yield files_pb2.UploadRequest(metadata=files_pb2.UploadMetadata(filename="slow.mp4"))
    for _ in range(empty):
        yield files_pb2.UploadRequest()
    while stop is None or not stop.is_set():
        yield files_pb2.UploadRequest(chunk=b"x")
        await asyncio.sleep(pause)


async def _refusal(call: grpc.aio.StreamUnaryCall) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value.code(), exc.value.details() or ""


def test_open_uploads_per_user_are_bounded(mesh: ServiceStack) -> None:
    client = mesh.new_user()

    async def scenario() -> tuple[grpc.StatusCode, str]:
        stop = asyncio.Event()
        open_uploads = [await _upload(mesh, client.token, _dribble(stop)) for _ in range(2)]
        refused = await _refusal(await _upload(mesh, client.token, _dribble(stop)))
        stop.set()
        for call in open_uploads:
            assert (await call).job.id  # the bounded ones went through
        return refused

    code, message = asyncio.run(scenario())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"you already have {UPLOADS_PER_USER} uploads open" in message


@pytest.mark.parametrize(
    ("messages", "code", "needle"),
    [
        (lambda: _dribble(pause=IDLE * 3), "DEADLINE_EXCEEDED", f"sent nothing for {IDLE} s"),
        (lambda: _dribble(), "DEADLINE_EXCEEDED", f"took longer than {TOTAL} s"),
        (
            lambda: _dribble(empty=MAX_EMPTY),
            "RESOURCE_EXHAUSTED",
            f"more than {MAX_EMPTY} upload messages carried no bytes",
        ),
    ],
    ids=["idle", "total", "empty-messages"],
)
def test_uploads_that_do_not_move_are_refused_and_removed(
    mesh: ServiceStack,
    messages: Callable[[], AsyncIterator[files_pb2.UploadRequest]],
    code: str,
    needle: str,
) -> None:
    client = mesh.new_user()
    stored = _stored_videos(mesh)

    async def scenario() -> tuple[grpc.StatusCode, str]:
        return await _refusal(await _upload(mesh, client.token, messages()))

    refused_code, message = asyncio.run(scenario())
    assert (refused_code.name, needle in message) == (code, True), message
    assert _stored_videos(mesh) == stored
