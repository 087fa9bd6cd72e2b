"""Every string a client sends is bounded: over its bound, INVALID_ARGUMENT (HTTP 400)
naming the field, from both edges and over gRPC, before anything is stored or hashed."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from devstack import PASSWORD, ServiceStack, service_stack
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.limits import (
    MAX_CONTENT_TYPE_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_FILENAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_TOKEN_LENGTH,
)
from mp3mesh.files.v1 import files_pb2

LONG_EMAIL = "a" * (MAX_EMAIL_LENGTH - 11) + "@example.com"
LONG_NAME = "x" * (MAX_FILENAME_LENGTH + 1) + ".mp4"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("string-bounds"), ("mongo", "auth", "gateway", "shim", "envoy")
    ) as stack:
        yield stack


def _cases(token: str) -> list[tuple[str, str, dict[str, object], str]]:
    """(method, path, httpx arguments, the message's start) for each over-long field."""
    bearer = {"Authorization": f"Bearer {token}"}
    video = b"\x00" * 1000
    return [
        ("POST", "/v1/users", {"json": {"email": LONG_EMAIL, "password": PASSWORD}}, "email"),
        ("POST", "/register", {"json": {"username": LONG_EMAIL, "password": PASSWORD}}, "username"),
        ("POST", "/v1/users", {"json": {"email": "a@example.com",
                                        "password": "p" * (MAX_PASSWORD_LENGTH + 1)}}, "password"),
        ("POST", "/v1/users", {"json": {"email": "a@example.com", "password": PASSWORD,
                                        "name": "n" * (MAX_DISPLAY_NAME_LENGTH + 1)}}, "name"),
        ("POST", "/v1/sessions", {"json": {"email": LONG_EMAIL, "password": PASSWORD}}, "email"),
        ("POST", "/login", {"auth": ("a@example.com", "p" * (MAX_PASSWORD_LENGTH + 1))},
         "password"),
        ("POST", "/v1/videos", {"params": {"metadata.filename": LONG_NAME}, "content": video,
                                "headers": bearer}, "metadata.filename"),
        ("POST", "/upload", {"content": video, "headers": {
            **bearer, "Content-Type": "video/" + "x" * MAX_CONTENT_TYPE_LENGTH}}, "Content-Type"),
        ("POST", "/v1/videos", {"params": {"metadata.sha256": "f" * 65}, "content": video,
                                "headers": bearer}, "metadata.sha256"),
        ("POST", "/upload", {"files": {"file": (LONG_NAME, video, "video/mp4")},
                             "headers": bearer}, "metadata.filename"),
        ("POST", "/upload", {"files": {"file": ("a.mp4", video, "video/" + "x" * 300)},
                             "headers": bearer}, "metadata.content_type"),
        ("GET", "/v1/jobs/" + "f" * 1000, {"headers": bearer}, "job id"),
        ("GET", "/status", {"params": {"fid": "f" * 1000}, "headers": bearer}, "job id"),
        ("GET", "/v1/mp3s/" + "f" * 1000, {"headers": bearer}, "file id"),
        ("GET", "/v1/jobs", {"params": {"pageToken": "f" * 1000}, "headers": bearer}, "page_token"),
    ]  # fmt: skip


def test_over_long_fields_are_400_naming_the_field_at_both_edges(mesh: ServiceStack) -> None:
    client = mesh.new_user()
    answers = {}
    for url in (mesh.envoy_url, mesh.shim_url):
        with httpx.Client(base_url=url, timeout=60) as http:
            for method, path, kwargs, field in _cases(client.token):
                reply = http.request(method, path, **kwargs)  # type: ignore[arg-type]
                answers[(url, method, path[:40], field)] = (reply.status_code, reply.text[:200])
                assert reply.status_code == 400, (url, method, path[:40], reply.text[:300])
                body = reply.json()
                assert body["code"] == 3, body
                assert body["message"].startswith(f"{field} is longer than"), (url, path, body)
                assert len(body["message"]) < 200  # the value is not echoed
    assert mesh.db()["jobs"].count_documents({}) == 0  # nothing was stored


def test_over_long_fields_are_invalid_argument_over_grpc(mesh: ServiceStack) -> None:
    client = mesh.new_user()
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        with pytest.raises(grpc.RpcError) as exc:
            auth_pb2_grpc.AuthServiceStub(channel).ValidateToken(
                auth_pb2.ValidateTokenRequest(token="t" * (MAX_TOKEN_LENGTH + 1)), timeout=30
            )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == f"token is longer than {MAX_TOKEN_LENGTH} characters"
    first = files_pb2.UploadRequest(
        metadata=files_pb2.UploadMetadata(filename="a.mp4", content_type="v/" + "x" * 300)
    )
    with pytest.raises(grpc.RpcError) as exc:
        client.files.Upload(
            iter([first, files_pb2.UploadRequest(chunk=b"x" * 100)]),
            metadata=client.metadata,
            timeout=30,
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == (
        f"metadata.content_type is longer than {MAX_CONTENT_TYPE_LENGTH} characters"
    )
    with pytest.raises(grpc.RpcError) as exc:
        client.job("a" * 10_000)
    assert exc.value.details() == (
        f"job id is longer than {MAX_ID_LENGTH} characters: not a valid id"
    )
