"""Errors that tell no internals: a handler's unexpected exception reaches the client as
INTERNAL with a generic message and a trace id, on gRPC and at both edges; the log line
of that trace id has the detail.

Provoked on the real stack with store errors that are not outages: a job record whose
progress is not a number (the gateway's conversion raises ValueError), and auth's
revocation table gone (PostgreSQL's UndefinedTable).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import grpc
import httpx
import psycopg2
import pytest
from bson import ObjectId

from devstack import ServiceStack, service_stack
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.cli.client import MeshClient
from mp3mesh.core.internal_errors import INTERNAL_MESSAGE
from mp3mesh.files.v1 import files_pb2
from mp3mesh.shim.errors import BACKEND_UNREACHABLE
from tests.helpers import envoy_renderer

TRACE = re.compile(r"trace id ([0-9a-f]{32})")
LEAKS = ("invalid literal", "ValueError", "progress", "Unexpected", "revoked_tokens", "relation")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("internal-errors"),
        ("mongo", "auth", "gateway", "shim", "envoy"),
    ) as stack:
        yield stack


def _broken_job(mesh: ServiceStack, client: MeshClient) -> str:
    """A job of ``client``'s whose record the gateway cannot turn into an answer."""
    job_id = ObjectId()
    now = dt.datetime.now(dt.UTC)
    mesh.db()["jobs"].insert_one(
        {
            "_id": job_id, "owner_id": client.whoami().id, "owner_email": "x@example.com",
            "filename": "v.mp4", "status": "QUEUED", "progress": "half", "error": "",
            "attempts": 0, "claim": None, "created": now, "updated": now,
        }
    )  # fmt: skip
    return str(job_id)


def _logged(mesh: ServiceStack, service: str, trace: str) -> list[dict[str, object]]:
    return [
        e for e in mesh.log_events(service) if e.get("trace_id") == trace and e.get("exception")
    ]


def _generic(message: str) -> str:
    assert message.startswith(INTERNAL_MESSAGE), message
    assert not any(leak in message for leak in LEAKS), message
    match = TRACE.search(message)
    assert match, message
    return match.group(1)


def test_an_unexpected_error_is_internal_with_a_trace_id_everywhere(mesh: ServiceStack) -> None:
    client = mesh.new_user()
    job_id = _broken_job(mesh, client)
    with pytest.raises(grpc.RpcError) as exc:
        client.files.GetJob(
            files_pb2.GetJobRequest(job_id=job_id), metadata=client.metadata, timeout=30
        )
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    traces = {"gRPC": _generic(exc.value.details())}
    for edge, url in (("envoy", mesh.envoy_url), ("shim", mesh.shim_url)):
        with httpx.Client(base_url=url, timeout=30, headers=dict(client.metadata)) as http:
            for path in (f"/v1/jobs/{job_id}", f"/status?fid={job_id}", "/v1/jobs"):
                reply = http.get(path)
                assert reply.status_code == 500, (edge, path, reply.text)
                body = reply.json()
                assert body["code"] == 13, (edge, path, body)
                traces[f"{edge} {path}"] = _generic(body["message"])
    print(f"\nINTERNAL answers: {traces}")
    for trace in traces.values():  # the detail is in the gateway's log, under that id
        (line,) = _logged(mesh, "gateway", trace)
        assert "invalid literal for int()" in str(line["exception"])


def test_a_database_error_is_internal_with_a_trace_id(mesh: ServiceStack) -> None:
    """auth's revocation table dropped: Logout's write fails with PostgreSQL's error."""
    with psycopg2.connect(mesh.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE revoked_tokens RENAME TO revoked_tokens_away")
    conn.close()
    try:
        for url in (mesh.envoy_url, mesh.shim_url):
            client = mesh.new_user()
            with httpx.Client(base_url=url, timeout=30, headers=dict(client.metadata)) as http:
                reply = http.post("/logout")
            assert (reply.status_code, reply.json()["code"]) == (500, 13), (url, reply.text)
            (line,) = _logged(mesh, "auth", _generic(reply.json()["message"]))
            assert "revoked_tokens" in str(line["exception"])
    finally:
        with psycopg2.connect(mesh.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE revoked_tokens_away RENAME TO revoked_tokens")
        conn.close()


def test_an_unreachable_backend_is_told_alike_at_both_edges(mesh: ServiceStack) -> None:
    """auth stopped: Envoy's own reply (its words name reset reasons and TLS errors) and
    the shim's say the same, and nothing of the mesh's insides."""
    assert envoy_renderer().BACKEND_UNREACHABLE == BACKEND_UNREACHABLE
    mesh.stop("auth")
    try:
        answers = {}
        for edge, url in (("envoy", mesh.envoy_url), ("shim", mesh.shim_url)):
            reply = httpx.post(f"{url}/login", auth=("a@example.com", "password"), timeout=60)
            answers[edge] = (reply.status_code, reply.json())
        with grpc.insecure_channel(f"127.0.0.1:{mesh.env['ENVOY_PORT']}") as channel:
            with pytest.raises(grpc.RpcError) as exc:
                auth_pb2_grpc.AuthServiceStub(channel).Login(
                    auth_pb2.LoginRequest(email="a@example.com", password="password"), timeout=60
                )
    finally:
        mesh.start("auth")
    print(f"\nauth down: {answers}; native gRPC: {exc.value.code()} {exc.value.details()}")
    expected = {"code": 14, "message": BACKEND_UNREACHABLE, "details": []}
    assert answers == {"envoy": (503, expected), "shim": (503, expected)}
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        BACKEND_UNREACHABLE,
    )
