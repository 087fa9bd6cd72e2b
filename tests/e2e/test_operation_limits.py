"""Login and Register limits hold on the operation, whatever way reaches it.

An attacker who meets a per-path limit tries another spelling of the path: a trailing
slash, the other binding, capitals, percent-encoded letters, native gRPC. auth counts on
the gRPC method, per the client address the edge established, so each spelling either
reaches Login and counts, or reaches nothing. Each client here is its own loopback
address (127.0.0.X as the source of its connections), so each has its own counts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from devstack import PASSWORD, ServiceStack, service_stack
from devstack.ways_in import (
    grpc_login,
    login_from,
    login_variants,
    loopback_sources,
    register_grpc,
    register_rest,
    rest_login,
    until_429,
)
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY

LOGINS_PER_MINUTE = 4
REGISTRATIONS_PER_HOUR = 3
_addresses = loopback_sources()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("operation-limits"),
        ("mongo", "auth", "gateway", "shim", "envoy"),
        LOGIN_REQUESTS_PER_MINUTE=str(LOGINS_PER_MINUTE),
        REGISTRATIONS_PER_ADDRESS_PER_HOUR=str(REGISTRATIONS_PER_HOUR),
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def account(mesh: ServiceStack) -> str:
    email = f"ops-{uuid.uuid4().hex[:12]}@example.com"
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        auth_pb2_grpc.AuthServiceStub(channel).Register(
            auth_pb2.RegisterRequest(email=email, password=PASSWORD),
            metadata=((CLIENT_ADDRESS_KEY, next(_addresses)),),
            timeout=60,
        )
    return email


REACH_LOGIN = [
    "envoy POST /login", "envoy POST /login/", "envoy POST /v1/sessions",
    "envoy POST /v1/sessions/", "shim POST /login", "shim POST /v1/sessions",
    "envoy native gRPC Login",
]  # fmt: skip


def test_every_way_to_login_counts_against_one_limit(mesh: ServiceStack, account: str) -> None:
    """Each spelling from an address of its own: at most LOGINS_PER_MINUTE logins pass,
    then 429 with retry-after; a spelling that does not reach Login gets no token at all."""
    report = {}
    for name, attempt in login_variants(mesh, account).items():
        answers = until_429(attempt, next(_addresses), LOGINS_PER_MINUTE + 2)
        statuses = [a.status for a in answers]
        passed = statuses.count(200)
        report[name] = f"{passed} x 200, then {statuses[passed:] or '-'}"
        assert passed <= LOGINS_PER_MINUTE, (name, statuses)
        if passed:
            assert statuses == [200] * LOGINS_PER_MINUTE + [429], (name, statuses)
            assert 0 < int(answers[-1].retry_after or 0) <= 60, (name, answers[-1])
        else:  # never reached Login: refused as a path, the same answer every time
            assert len(set(statuses)) == 1 and statuses[0] in (400, 404), (name, statuses)
    print("\nlogins before the 429, per way in (one address each):")
    for name, line in report.items():
        print(f"  {name:32} {line}")
    all_passed = f"{LOGINS_PER_MINUTE} x 200"
    missing = [name for name in REACH_LOGIN if not report[name].startswith(all_passed)]
    assert not missing, report


def test_the_ways_in_share_one_count(mesh: ServiceStack, account: str) -> None:
    """One address taking turns over both edges, every path and native gRPC: the
    LOGINS_PER_MINUTE-th login is the last."""
    variants = login_variants(mesh, account)
    source = next(_addresses)
    statuses = [variants[name](source).status for name in REACH_LOGIN]
    assert statuses == [200] * LOGINS_PER_MINUTE + [429] * (len(REACH_LOGIN) - LOGINS_PER_MINUTE)


def test_a_forged_client_address_changes_nothing(mesh: ServiceStack, account: str) -> None:
    """A client whose count is spent claims to be someone else (X-Forwarded-For and the
    edges' own x-mp3mesh-client-address, or the metadata over native gRPC): the edge
    replaces what it sent, and the claim is refused as the client's own. Another client
    claiming the spent one's address keeps its own count."""
    envoy_grpc = f"127.0.0.1:{mesh.env['ENVOY_PORT']}"
    report = {}
    for edge, url in (("envoy", mesh.envoy_url), ("shim", mesh.shim_url), ("grpc", "")):
        spent, other = next(_addresses), next(_addresses)
        if edge == "grpc":
            honest = grpc_login(envoy_grpc, account)
            forged = grpc_login(envoy_grpc, account, ((CLIENT_ADDRESS_KEY, "198.51.100.5"),))
            as_spent = grpc_login(envoy_grpc, account, ((CLIENT_ADDRESS_KEY, spent),))
        else:
            honest = rest_login(url, "/login", account)
            forged = rest_login(
                url,
                "/login",
                account,
                {"X-Forwarded-For": "198.51.100.5", CLIENT_ADDRESS_KEY: "198.51.100.6"},
            )
            as_spent = rest_login(
                url, "/login", account, {"X-Forwarded-For": spent, CLIENT_ADDRESS_KEY: spent}
            )
        first = [honest(spent).status for _ in range(LOGINS_PER_MINUTE)]
        claims = [forged(spent).status for _ in range(2)]
        others = [as_spent(other).status for _ in range(LOGINS_PER_MINUTE + 1)]
        report[edge] = (first, claims, others)
        assert first == [200] * LOGINS_PER_MINUTE, (edge, first)
        assert claims == [429, 429], (edge, claims)
        assert others == [200] * LOGINS_PER_MINUTE + [429], (edge, others)
    print(f"\nforged addresses (own logins, then forging, then another claiming it): {report}")


def test_registrations_per_address_are_limited_at_both_edges(mesh: ServiceStack) -> None:
    envoy_grpc = f"127.0.0.1:{mesh.env['ENVOY_PORT']}"
    ways = {
        "envoy POST /v1/users": register_rest(mesh.envoy_url, "/v1/users"),
        "envoy POST /register/": register_rest(mesh.envoy_url, "/register/"),
        "shim POST /register": register_rest(mesh.shim_url, "/register"),
        "shim POST /v1/users": register_rest(mesh.shim_url, "/v1/users"),
        "envoy native gRPC Register": register_grpc(envoy_grpc),
    }
    print("\nregistrations before the 429, per way in (one address each):")
    for name, attempt in ways.items():
        answers = until_429(attempt, next(_addresses), REGISTRATIONS_PER_HOUR + 2)
        statuses = [a.status for a in answers]
        print(f"  {name:32} {statuses}")
        assert statuses == [200] * REGISTRATIONS_PER_HOUR + [429], (name, statuses)
        assert 3000 < int(answers[-1].retry_after or 0) <= 3600, (name, answers[-1])
    # One address over every way: the same count.
    source = next(_addresses)
    statuses = [attempt(source).status for attempt in ways.values()]
    assert statuses == [200] * REGISTRATIONS_PER_HOUR + [429] * (len(ways) - REGISTRATIONS_PER_HOUR)


def test_a_registration_flood_leaves_login_its_hashes(mesh: ServiceStack, account: str) -> None:
    """Registrations from 60 addresses at once fill Register's own hash pool (some are
    told the server is busy); logins meanwhile are never refused as busy."""
    auth = mesh.env["AUTH_LISTEN"]

    def register(i: int) -> str:
        with grpc.insecure_channel(auth) as channel:
            try:
                auth_pb2_grpc.AuthServiceStub(channel).Register(
                    auth_pb2.RegisterRequest(
                        email=f"flood-{uuid.uuid4().hex[:12]}@example.com", password=PASSWORD
                    ),
                    metadata=((CLIENT_ADDRESS_KEY, f"198.18.0.{i}"),),
                    timeout=120,
                )
            except grpc.RpcError as exc:
                return exc.code().name  # type: ignore[attr-defined, no-any-return]
        return "OK"

    def login(i: int) -> str:
        with grpc.insecure_channel(auth) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            return login_from(stub, account, PASSWORD, f"198.19.0.{i}")

    with ThreadPoolExecutor(70) as pool:
        registrations = pool.map(register, range(60))
        logins = pool.map(login, range(10))
        registered, logged_in = Counter(registrations), Counter(logins)
    print(f"\nregistration flood: {dict(registered)}; logins meanwhile: {dict(logged_in)}")
    assert registered["RESOURCE_EXHAUSTED"] > 0, registered
    assert logged_in == Counter({"OK": 10}), logged_in
