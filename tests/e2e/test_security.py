"""Security protections on the real mesh (auth, gateway, the shim and Envoy as separate
processes on the machine's PostgreSQL and RabbitMQ), each shown by what an attacker
would try: guessing passwords, flooding Login, probing Register for accounts, holding on
to a token."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from devstack import PASSWORD, PeakRss, ServiceStack, service_stack
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.cli.client import MeshClient
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY
from mp3mesh.files.v1 import files_pb2

PER_EMAIL = 5
PER_ADDRESS = 8
ARGON2_MIB = 64


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("security"),
        ("mongo", "auth", "gateway", "shim", "envoy"),
        LOGIN_FAILURES_PER_EMAIL=f"{PER_EMAIL}/minute",
        LOGIN_FAILURES_PER_ADDRESS=f"{PER_ADDRESS}/minute",
    ) as stack:
        yield stack


def _auth(mesh: ServiceStack) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
def auth(mesh: ServiceStack) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    yield from _auth(mesh)


def _login(
    auth: auth_pb2_grpc.AuthServiceStub, email: str, password: str, address: str
) -> grpc.RpcError | auth_pb2.LoginResponse:
    """Login as if through an edge that saw ``address``: the answer or the error."""
    try:
        return auth.Login(
            auth_pb2.LoginRequest(email=email, password=password),
            metadata=((CLIENT_ADDRESS_KEY, address),),
            timeout=60,
        )
    except grpc.RpcError as exc:
        return exc


def _code(answer: object) -> grpc.StatusCode:
    return answer.code() if isinstance(answer, grpc.RpcError) else grpc.StatusCode.OK  # type: ignore[attr-defined]


def _register(mesh: ServiceStack) -> str:
    email = f"sec-{uuid.uuid4().hex[:12]}@example.com"
    for auth in _auth(mesh):
        auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60)
    return email


def test_bad_logins_are_refused_per_account_and_address_then_per_address(
    mesh: ServiceStack, auth: auth_pb2_grpc.AuthServiceStub
) -> None:
    victim = _register(mesh)
    codes = [_code(_login(auth, victim, f"guess {i}", "198.51.100.1")) for i in range(PER_EMAIL)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * PER_EMAIL
    throttled = _login(auth, victim, PASSWORD, "198.51.100.1")  # even the right password
    assert _code(throttled) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The owner, from another address, is not locked out (tests/test_account_locks.py).
    assert _code(_login(auth, victim, PASSWORD, "198.51.100.2")) == grpc.StatusCode.OK
    assert "too many failed logins for this account; try again in" in throttled.details()  # type: ignore[union-attr]
    retry_after = dict(throttled.trailing_metadata())["retry-after"]  # type: ignore[union-attr]
    assert 0 < int(retry_after) <= 60

    # One address trying many accounts: stopped after PER_ADDRESS failures in all.
    address = "198.51.100.3"
    answers = [_login(auth, f"x{i}-{victim}", "guess", address) for i in range(PER_ADDRESS + 1)]
    assert [_code(a) for a in answers] == [grpc.StatusCode.UNAUTHENTICATED] * PER_ADDRESS + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ]
    assert "from your address" in answers[-1].details()  # type: ignore[union-attr]
    other = _register(mesh)
    assert _code(_login(auth, other, PASSWORD, address)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _code(_login(auth, other, PASSWORD, "198.51.100.4")) == grpc.StatusCode.OK


def test_concurrent_logins_hash_within_the_memory_bound(mesh: ServiceStack) -> None:
    """200 logins at once, each from its own address and account (no limit applies):
    at most HASH_CONCURRENCY argon2 hashes (64 MiB each) run at a time, the queue is
    bounded, and the rest are refused at once with RESOURCE_EXHAUSTED."""
    process = mesh.process("auth")

    def flood(auth: auth_pb2_grpc.AuthServiceStub, i: int) -> object:
        return _login(auth, f"flood{i}@example.com", "guess", f"203.0.113.{i}")

    for auth in _auth(mesh):
        with PeakRss(process) as rss, ThreadPoolExecutor(200) as pool:
            answers = list(pool.map(lambda i, a=auth: flood(a, i), range(200)))
    codes = Counter(_code(a).name for a in answers)
    busy = [a for a in answers if _code(a) == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert codes["UNAUTHENTICATED"] >= 18 and busy, codes
    assert all("busy" in a.details() for a in busy)  # type: ignore[union-attr]
    # Two hashes at a time (HASH_CONCURRENCY=2): 128 MiB of argon2 plus threads and
    # buffers; without the bound, the default executor's 6 threads needed about 400.
    assert rss.growth < 3 * ARGON2_MIB * 2**20, f"auth grew {rss.growth / 2**20:.0f} MiB {codes}"


def test_register_answers_alike_whether_or_not_the_email_exists(mesh: ServiceStack) -> None:
    existing = _register(mesh)
    for url in (mesh.envoy_url, mesh.shim_url):
        new = f"new-{uuid.uuid4().hex[:12]}@example.com"
        with httpx.Client(base_url=url, timeout=60) as http:
            answers = {
                email: http.post("/v1/users", json={"email": email, "password": "other pass"})
                for email in (existing, new)
            }
        for email, reply in answers.items():
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"user": {"id": "", "email": email, "displayName": ""}}
        assert len({frozenset(r.headers.keys()) for r in answers.values()}) == 1
    for auth in _auth(mesh):  # the first account keeps its password
        assert _code(_login(auth, existing, PASSWORD, "192.0.2.1")) == grpc.StatusCode.OK


def _list_jobs(client: MeshClient) -> grpc.StatusCode:
    try:
        client.files.ListJobs(files_pb2.ListJobsRequest(), metadata=client.metadata, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def _until(expected: grpc.StatusCode, call: Callable[[], grpc.StatusCode], within: float) -> float:
    """Seconds until ``call`` answers ``expected``; fails after ``within`` seconds."""
    started = time.monotonic()
    while (answer := call()) != expected:
        assert time.monotonic() - started < within, answer
        time.sleep(0.2)
    return time.monotonic() - started


def test_logout_revokes_the_token_on_both_edges(mesh: ServiceStack) -> None:
    for url in (mesh.envoy_url, mesh.shim_url):
        client, email = mesh.new_account()
        other = MeshClient(mesh.env["AUTH_LISTEN"], mesh.env["GATEWAY_LISTEN"])
        other.login(email, PASSWORD)  # a second session of the same user
        assert _list_jobs(client) == grpc.StatusCode.OK
        bearer = {"Authorization": f"Bearer {client.token}"}
        with httpx.Client(base_url=url, timeout=60, headers=bearer) as http:
            assert (http.post("/logout").status_code, http.post("/logout").json()) == (200, {})
            me = http.get("/v1/users/me")
        assert (me.status_code, me.json()["message"]) == (
            401,
            "token was revoked (logged out); log in",
        )
        for auth in _auth(mesh):
            with pytest.raises(grpc.RpcError) as exc:
                auth.ValidateToken(auth_pb2.ValidateTokenRequest(token=client.token), timeout=30)
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Pushed to the gateway (tests/e2e/test_token_push.py times it).
        _until(grpc.StatusCode.UNAUTHENTICATED, lambda c=client: _list_jobs(c), 30)
        assert _list_jobs(other) == grpc.StatusCode.OK
        other.close()
    with httpx.Client(base_url=mesh.shim_url, timeout=60) as http:
        refused = http.delete("/v1/sessions/current", headers={"Authorization": "Bearer x.y.z"})
    assert refused.status_code == 401
