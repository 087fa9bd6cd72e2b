"""A thin client over the generated stubs, for the demo, the tests and the benchmarks.

It adds nothing the stubs cannot do; it only saves writing the upload stream and the
bearer metadata again in every script.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshcore import limits
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc

CHUNK_SIZE = limits.UPLOAD_MESSAGE_BYTES


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def upload_requests(
    path: Path,
    *,
    content_type: str = "video/mp4",
    chunk_size: int = CHUNK_SIZE,
    with_checks: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Iterator[files_pb2.UploadRequest]:
    """Metadata first, then the file in chunks, read lazily: memory stays at one chunk."""
    meta = files_pb2.UploadMetadata(filename=path.name, content_type=content_type)
    if with_checks:
        meta.size_bytes = path.stat().st_size
        meta.sha256 = sha256_of(path)
    yield files_pb2.UploadRequest(metadata=meta)
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            if on_chunk:
                on_chunk(len(chunk))
            yield files_pb2.UploadRequest(chunk=chunk)


def channel(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A channel to ``address``: over TLS with ``credentials`` (meshcore.tls), else plaintext."""
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


def is_serving(
    address: str,
    service: str = "",
    timeout: float = 1,
    credentials: grpc.ChannelCredentials | None = None,
) -> bool:
    """Whether the gRPC server at ``address`` answers grpc.health.v1 with SERVING."""
    with channel(address, credentials) as health_channel:
        try:
            reply = health_pb2_grpc.HealthStub(health_channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


class MeshClient:
    def __init__(
        self,
        auth_address: str,
        gateway_address: str,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._auth_channel = channel(auth_address, credentials)
        self._files_channel = channel(
            gateway_address,
            credentials,
            [("grpc.max_receive_message_length", limits.GRPC_MAX_MESSAGE_BYTES)],
        )
        self.auth = auth_pb2_grpc.AuthServiceStub(self._auth_channel)
        self.files = files_pb2_grpc.FileServiceStub(self._files_channel)
        self.token = ""

    def close(self) -> None:
        self._auth_channel.close()
        self._files_channel.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def register(self, email: str, password: str) -> auth_pb2.User:
        return self.auth.Register(
            auth_pb2.RegisterRequest(email=email, password=password), timeout=10
        ).user

    def login(self, email: str, password: str) -> str:
        self.token = self.auth.Login(
            auth_pb2.LoginRequest(email=email, password=password), timeout=10
        ).token
        return self.token

    def logout(self) -> None:
        """Revoke this client's token (auth refuses it at once, the gateway soon after)."""
        self.auth.Logout(auth_pb2.LogoutRequest(), metadata=self.metadata, timeout=10)
        self.token = ""

    def upload(
        self,
        path: Path,
        *,
        content_type: str = "video/mp4",
        on_chunk: Callable[[int], None] | None = None,
    ) -> files_pb2.Job:
        requests = upload_requests(path, content_type=content_type, on_chunk=on_chunk)
        reply: files_pb2.UploadResponse = self.files.Upload(
            requests, metadata=self.metadata, timeout=600
        )
        return reply.job

    def watch(self, job_id: str, timeout: float = 600) -> Iterator[files_pb2.Job]:
        for reply in self.files.WatchJob(
            files_pb2.WatchJobRequest(job_id=job_id), metadata=self.metadata, timeout=timeout
        ):
            yield reply.job

    def wait(self, job_id: str, timeout: float = 600) -> files_pb2.Job:
        last = None
        for last in self.watch(job_id, timeout):  # noqa: B007 - the last update is the answer
            pass
        assert last is not None
        return last

    def download(self, file_id: str, dest: Path) -> int:
        size = 0
        tmp = dest.with_name(dest.name + ".part")
        with tmp.open("wb") as out:
            for body in self.files.Download(
                files_pb2.DownloadRequest(file_id=file_id), metadata=self.metadata, timeout=600
            ):
                out.write(body.data)
                size += len(body.data)
        os.replace(tmp, dest)
        return size
