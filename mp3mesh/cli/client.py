"""The client core over the generated stubs: the `mp3mesh` CLI, the demo, the tests and
the benchmarks all call the mesh through it.

It adds nothing the stubs cannot do; it saves writing the upload stream, the download
loop and the bearer metadata again in every caller. Files stream both ways: one chunk
in memory at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core import limits
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc
from mp3mesh.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

CHUNK_SIZE = limits.UPLOAD_MESSAGE_BYTES
# Deadline of the unary calls; streams run as long as they move data.
CALL_TIMEOUT_SECONDS = 30.0
STREAM_TIMEOUT_SECONDS = 600.0

ProgressCallback = Callable[[int], None]


def sha256_of(path: Path, on_block: ProgressCallback | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
            if on_block:
                on_block(len(block))
    return digest.hexdigest()


def upload_requests(
    path: Path,
    *,
    content_type: str = "video/mp4",
    chunk_size: int = CHUNK_SIZE,
    with_checks: bool = True,
    on_chunk: ProgressCallback | None = None,
    on_hash: ProgressCallback | None = None,
    options: files_pb2.ConversionOptions | None = None,
) -> Iterator[files_pb2.UploadRequest]:
    """Metadata first, then the file in chunks, read lazily: memory stays at one chunk.

    With checks, the size and SHA-256 go in the metadata, so the gateway refuses a file
    that changed or was cut on the way (``on_hash`` follows the hashing pass).
    """
    meta = files_pb2.UploadMetadata(filename=path.name, content_type=content_type, options=options)
    if with_checks:
        meta.size_bytes = path.stat().st_size
        meta.sha256 = sha256_of(path, on_hash)
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
    """A channel to ``address``: over TLS with ``credentials`` (mp3mesh.core.tls), else
    plaintext."""
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
    """Both services of the mesh: AuthService at ``auth_address``, FileService at
    ``gateway_address``. Given one address (Envoy's edge, which carries both services'
    gRPC calls), both go there. Over TLS with ``credentials`` (mp3mesh.core.tls)."""

    def __init__(
        self,
        auth_address: str,
        gateway_address: str | None = None,
        *,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        options = [("grpc.max_receive_message_length", limits.GRPC_MAX_MESSAGE_BYTES)]
        self._auth_channel = channel(auth_address, credentials)
        self._files_channel = channel(gateway_address or auth_address, credentials, options)
        self.auth = auth_pb2_grpc.AuthServiceStub(self._auth_channel)
        self.files = files_pb2_grpc.FileServiceStub(self._files_channel)
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(self._files_channel)
        self.token = token

    def close(self) -> None:
        self._auth_channel.close()
        self._files_channel.close()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def register(self, email: str, password: str, name: str = "") -> auth_pb2.User:
        return self.auth.Register(
            auth_pb2.RegisterRequest(email=email, password=password, name=name),
            timeout=CALL_TIMEOUT_SECONDS,
        ).user

    def login_reply(self, email: str, password: str) -> auth_pb2.LoginResponse:
        reply: auth_pb2.LoginResponse = self.auth.Login(
            auth_pb2.LoginRequest(email=email, password=password), timeout=CALL_TIMEOUT_SECONDS
        )
        self.token = reply.token
        return reply

    def login(self, email: str, password: str) -> str:
        return self.login_reply(email, password).token

    def whoami(self) -> auth_pb2.User:
        return self.auth.WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS
        ).user

    def logout(self) -> None:
        """Revoke this client's token (refused everywhere within a second)."""
        self.auth.Logout(
            auth_pb2.LogoutRequest(), metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS
        )
        self.token = ""

    def change_password(self, current: str, new: str) -> auth_pb2.LoginResponse:
        """Set a new password; every earlier token of the account is revoked, this client
        takes the new one the reply carries."""
        reply: auth_pb2.ChangePasswordResponse = self.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=current, new_password=new),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )
        self.token = reply.session.token
        return reply.session

    def delete_account(self, password: str) -> None:
        """Delete the account (its tokens are revoked everywhere)."""
        self.auth.DeleteAccount(
            auth_pb2.DeleteAccountRequest(password=password),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )
        self.token = ""

    def upload(
        self,
        path: Path,
        *,
        content_type: str = "video/mp4",
        on_chunk: ProgressCallback | None = None,
        on_hash: ProgressCallback | None = None,
        timeout: float | None = STREAM_TIMEOUT_SECONDS,
        options: files_pb2.ConversionOptions | None = None,
        idempotency_key: str = "",
    ) -> files_pb2.Job:
        """Upload a video; under ``idempotency_key``, sending it again (after a lost
        answer) answers the same job."""
        requests = upload_requests(
            path, content_type=content_type, on_chunk=on_chunk, on_hash=on_hash, options=options
        )
        metadata = self.metadata + (
            (("idempotency-key", idempotency_key),) if idempotency_key else ()
        )
        reply: files_pb2.UploadResponse = self.files.Upload(
            requests, metadata=metadata, timeout=timeout
        )
        return reply.job

    def presets(self) -> list[files_pb2.Preset]:
        return list(
            self.files.ListPresets(
                files_pb2.ListPresetsRequest(), metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS
            ).presets
        )

    def create_webhook(self, url: str, events: Sequence[str] = ()) -> webhooks_pb2.Webhook:
        """Register an endpoint; the answer carries its secret, shown this once."""
        return self.webhooks.CreateWebhook(
            webhooks_pb2.CreateWebhookRequest(url=url, events=list(events)),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        ).webhook

    def list_webhooks(self) -> list[webhooks_pb2.Webhook]:
        return list(
            self.webhooks.ListWebhooks(
                webhooks_pb2.ListWebhooksRequest(),
                metadata=self.metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            ).webhooks
        )

    def delete_webhook(self, webhook_id: str) -> None:
        self.webhooks.DeleteWebhook(
            webhooks_pb2.DeleteWebhookRequest(webhook_id=webhook_id),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )

    def job(self, job_id: str, *, full: bool = False) -> files_pb2.Job:
        """The job; ``full``: with how it was done (GetJob's JOB_VIEW_FULL)."""
        view = files_pb2.JOB_VIEW_FULL if full else files_pb2.JOB_VIEW_BASIC
        return self.files.GetJob(
            files_pb2.GetJobRequest(job_id=job_id, view=view),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        ).job

    def cancel(self, job_id: str) -> files_pb2.Job:
        return self.files.CancelJob(
            files_pb2.CancelJobRequest(job_id=job_id),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        ).job

    def delete(self, job_id: str) -> None:
        self.files.DeleteJob(
            files_pb2.DeleteJobRequest(job_id=job_id),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )

    def retry(self, job_id: str) -> files_pb2.Job:
        return self.files.RetryJob(
            files_pb2.RetryJobRequest(job_id=job_id),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        ).job

    def jobs(self, limit: int = 20) -> Iterator[files_pb2.Job]:
        """The caller's jobs, newest first, at most ``limit`` (0: all), page by page."""
        token, seen = "", 0
        while True:
            size = min(100, limit - seen) if limit else 100
            page = self.files.ListJobs(
                files_pb2.ListJobsRequest(page_size=size, page_token=token),
                metadata=self.metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
            for job in page.jobs:
                yield job
                seen += 1
            token = page.next_page_token
            if not token or (limit and seen >= limit):
                return

    def watch(self, job_id: str, timeout: float | None = 600) -> Iterator[files_pb2.Job]:
        """The job now and after every change, until it ends (``timeout=None``: no limit)."""
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

    def download(
        self,
        file_id: str,
        dest: Path,
        *,
        on_chunk: ProgressCallback | None = None,
        timeout: float | None = STREAM_TIMEOUT_SECONDS,
    ) -> int:
        """Stream the MP3 into ``dest`` (through ``dest.part``, renamed once complete)."""
        size = 0
        tmp = dest.with_name(dest.name + ".part")
        try:
            with tmp.open("wb") as out:
                for body in self.files.Download(
                    files_pb2.DownloadRequest(file_id=file_id),
                    metadata=self.metadata,
                    timeout=timeout,
                ):
                    out.write(body.data)
                    size += len(body.data)
                    if on_chunk:
                        on_chunk(len(body.data))
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return size
