"""The checks CI makes of the contracts: protos lint clean, stubs not stale, code lint
and type clean, every server has health and reflection, and stops gracefully on SIGTERM."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devstack import ROOT, Stack, free_port

BIN = ROOT / ".venv" / "bin"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{ROOT / 'node_modules/.bin'}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_buf_lint_is_clean() -> None:
    result = run("buf", "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    result = run("scripts/genproto.sh", str(tmp_path))
    assert result.returncode == 0, result.stderr
    diff = filecmp.dircmp(tmp_path / "mp3mesh", ROOT / "gen" / "mp3mesh")
    stale: list[str] = []

    def walk(d: filecmp.dircmp[str], prefix: str) -> None:
        stale.extend(f"{prefix}{n}" for n in d.diff_files + d.left_only + d.right_only)
        for name, sub in d.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(diff, "")
    assert not stale, f"gen/ is stale, run `make proto`: {stale}"


def test_ruff_is_clean() -> None:
    for cmd in (("ruff", "check", "."), ("ruff", "format", "--check", ".")):
        result = run(*cmd)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("server", ["auth", "gateway"])
def test_health_and_reflection(stack: Stack, server: str) -> None:
    address = stack.auth_address if server == "auth" else stack.gateway_address
    expected = {"auth": "mp3mesh.auth.v1.AuthService", "gateway": "mp3mesh.files.v1.FileService"}[
        server
    ]
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=expected)).status == 1
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        [reply] = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for s in reply.list_services_response.service}
    assert {expected, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_sigterm_drains_and_exits_cleanly(stack: Stack) -> None:
    """A second auth process on the stack's database: SERVING, then SIGTERM, then exit 0."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, **stack.env, "AUTH_LISTEN": address}
    proc = subprocess.Popen(
        [str(BIN / "python"), "-m", "mp3mesh.auth"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        break
                except grpc.RpcError:
                    assert time.monotonic() < deadline, "auth did not start"
                    time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert '"stopping"' in out and '"stopped"' in out
    finally:
        if proc.poll() is None:
            proc.kill()
