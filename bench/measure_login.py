"""Measures the login protections on a real auth (not a test; run by hand):

    .venv/bin/python -m bench.measure_login

- how many bad logins for one account, and from one address, pass before Login answers
  RESOURCE_EXHAUSTED, and how many login requests one address makes through each edge
  before 429 (the default limits);
- logins and registrations before the 429 through each way in (paths, edges, native
  gRPC), one client address each (the default limits);
- auth's peak RSS growth under 200 concurrent logins, with the argon2 bound
  (HASH_CONCURRENCY=2, HASH_QUEUE=16) and with 6 hashes at once and no queue bound
  (what asyncio.to_thread's default executor allowed on 2 cores before).
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx

from devstack import PASSWORD, PeakRss, ServiceStack, http_ok, service_stack, wait_for
from devstack import ways_in as ops
from devstack.ways_in import login_from
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

_addresses = ops.loopback_sources()
DEFAULT_LIMITS = {
    "LOGIN_FAILURES_PER_ADDRESS": "20/minute",
    "LOGIN_REQUESTS_PER_MINUTE": "30",
    "REGISTRATIONS_PER_ADDRESS_PER_HOUR": "20",
}
# Ways into Login and Register, each measured from a loopback address of its own.
LOGIN_WAYS = ("envoy POST /login", "envoy POST /login/", "envoy POST /v1/sessions/",
              "envoy POST /log%69n", "envoy native gRPC Login", "shim POST /login",
              "shim POST /v1/sessions")  # fmt: skip


_login = login_from


def _until_refused(attempt: object) -> int:
    for n in range(1, 200):
        if attempt() not in ("OK", "UNAUTHENTICATED", 200, 401):  # type: ignore[operator]
            return n - 1
    return -1


def limits(mesh: ServiceStack) -> None:
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    mesh.new_user()
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60)
        bad = f"b-{email}"
        per_email = _until_refused(lambda: _login(stub, bad, "wrong", "198.51.100.9"))
        n = iter(range(1000))
        per_address = _until_refused(
            lambda: _login(stub, f"x{next(n)}@example.com", "wrong", "198.51.100.10")
        )
    print(f"bad logins for one account before RESOURCE_EXHAUSTED: {per_email}")
    print(f"bad logins from one address (any accounts) before RESOURCE_EXHAUSTED: {per_address}")
    for edge, url in (("Envoy", mesh.envoy_url), ("shim", mesh.shim_url)):
        mesh.restart("auth")  # both edges' requests come from 127.0.0.1: one count
        wait_for(lambda: http_ok(f"{mesh.shim_url}/readyz"), "the shim reaches auth again", 60)
        with httpx.Client(base_url=url, timeout=60) as http:  # good logins count too
            passed = _until_refused(
                lambda http=http: http.post("/login", auth=(email, PASSWORD)).status_code
            )
        print(f"good login requests from one address through {edge} before 429: {passed}")


def ways_in(mesh: ServiceStack) -> None:
    """Good logins, and registrations, one client address per way in, at the defaults."""
    email = f"w-{uuid.uuid4().hex[:8]}@example.com"
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        auth_pb2_grpc.AuthServiceStub(channel).Register(
            auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60
        )
    variants = ops.login_variants(mesh, email)
    for name in LOGIN_WAYS:
        answers = ops.until_429(variants[name], next(_addresses), 40)
        print(f"logins before the 429, {name}: {len(answers) - 1} ({answers[-1]})")
    registrations = {
        "envoy POST /v1/users": ops.register_rest(mesh.envoy_url, "/v1/users"),
        "shim POST /register": ops.register_rest(mesh.shim_url, "/register"),
        "envoy native gRPC": ops.register_grpc(f"127.0.0.1:{mesh.env['ENVOY_PORT']}"),
    }
    for name, attempt in registrations.items():
        answers = ops.until_429(attempt, next(_addresses), 30)
        print(f"registrations before the 429, {name}: {len(answers) - 1} ({answers[-1]})")


def memory(mesh: ServiceStack, label: str) -> None:
    process = mesh.process("auth")
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with PeakRss(process) as rss, ThreadPoolExecutor(200) as pool:
            answers = Counter(
                pool.map(
                    lambda i: _login(stub, f"f{i}@example.com", "guess", f"203.0.113.{i}"),
                    range(200),
                )
            )
    print(
        f"200 concurrent logins, {label}: auth RSS +{rss.growth / 2**20:.0f} MiB "
        f"(peak {rss.peak / 2**20:.0f} MiB); answers {dict(answers)}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        services = ("mongo", "auth", "gateway", "shim", "envoy")
        with service_stack(Path(tmp) / "a", services, **DEFAULT_LIMITS) as mesh:
            limits(mesh)
            ways_in(mesh)
            memory(mesh, "HASH_CONCURRENCY=2 HASH_QUEUE=16 (defaults)")
            mesh.restart("auth", {"HASH_CONCURRENCY": "6", "HASH_QUEUE": "1000"})
            memory(mesh, "HASH_CONCURRENCY=6 HASH_QUEUE=1000 (as before: unbounded queue)")


if __name__ == "__main__":
    main()
