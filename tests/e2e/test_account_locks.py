"""Per-account locks that hold under parallel guesses and cannot lock the owner out.

On the real auth (PostgreSQL, argon2), called over gRPC as an edge calls it: the client
address in x-mp3mesh-client-address, which auth believes from its callers in plaintext
development (docs/security.md).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from devstack import PASSWORD, ServiceStack, service_stack
from devstack.ways_in import login_from
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

PER_PAIR = 5
PER_ACCOUNT = 8
SLOWDOWN = 4


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with service_stack(
        tmp_path_factory.mktemp("account-locks"),
        ("auth",),
        LOGIN_FAILURES_PER_EMAIL=f"{PER_PAIR}/minute",
        LOGIN_FAILURES_PER_ACCOUNT=f"{PER_ACCOUNT}/hour",
        LOGIN_ACCOUNT_SLOWDOWN_SECONDS=str(SLOWDOWN),
        HASH_CONCURRENCY="2",
        HASH_QUEUE="64",
    ) as stack:
        yield stack


def _login(mesh: ServiceStack, email: str, password: str, address: str) -> str:
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        return login_from(auth_pb2_grpc.AuthServiceStub(channel), email, password, address)


def _account(mesh: ServiceStack) -> str:
    email = f"lock-{uuid.uuid4().hex[:12]}@example.com"
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
        auth_pb2_grpc.AuthServiceStub(channel).Register(
            auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60
        )
    return email


def test_parallel_guesses_cannot_pass_the_lock(mesh: ServiceStack) -> None:
    """30 wrong passwords at once from one address: PER_PAIR are hashed and refused as
    wrong, every other one is refused before its hash; the right one too, afterwards."""
    victim = _account(mesh)
    with ThreadPoolExecutor(30) as pool:
        answers = Counter(
            pool.map(lambda i: _login(mesh, victim, f"g{i}", "192.0.2.10"), range(30))
        )
    print(f"\n30 parallel guesses from one address: {dict(answers)}")
    assert answers == Counter({"UNAUTHENTICATED": PER_PAIR, "RESOURCE_EXHAUSTED": 30 - PER_PAIR})
    assert _login(mesh, victim, PASSWORD, "192.0.2.10") == "RESOURCE_EXHAUSTED"


def test_guessing_from_many_addresses_slows_the_account_but_not_its_owner(
    mesh: ServiceStack,
) -> None:
    """An attacker guessing from one new address after another (never reaching any one
    address's lock) pushes the account past PER_ACCOUNT failures: from then on unknown
    addresses get one attempt per SLOWDOWN seconds between them, while the owner, from
    the address they logged in from before, logs in every time, at once."""
    victim = _account(mesh)
    owner = "192.0.2.200"
    assert _login(mesh, victim, PASSWORD, owner) == "OK"
    stop = threading.Event()
    attacker: Counter[str] = Counter()

    def guess() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            attacker[_login(mesh, victim, f"guess {n}", f"198.18.{n // 250}.{n % 250}")] += 1

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while attacker["RESOURCE_EXHAUSTED"] < 20:  # the slowdown has set in
            assert time.monotonic() < deadline, attacker
            time.sleep(0.2)
        slowed_at = time.monotonic()
        hashed_before = attacker["UNAUTHENTICATED"]
        owner_logins = []
        for _ in range(3):
            started = time.monotonic()
            owner_logins.append((_login(mesh, victim, PASSWORD, owner), time.monotonic() - started))
            time.sleep(1)
        elapsed = time.monotonic() - slowed_at
        hashed_during = attacker["UNAUTHENTICATED"] - hashed_before
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(
        f"\nattacker: {dict(attacker)}; over {elapsed:.1f} s of slowdown {hashed_during} guesses"
        f" hashed; owner: {[(code, round(t, 2)) for code, t in owner_logins]}"
    )
    assert [code for code, _ in owner_logins] == ["OK"] * 3
    # One admitted per SLOWDOWN window, plus those already hashing when it set in (one
    # per guessing thread at most).
    assert hashed_during <= elapsed / SLOWDOWN + 1 + len(threads), (hashed_during, elapsed)
    # Before the slowdown, at most PER_ACCOUNT failures plus those in flight at once.
    assert hashed_before <= PER_ACCOUNT + 4 + elapsed / SLOWDOWN + 2
    # A new address of the owner's waits at most the slowdown (the attacker has stopped).
    answer = _login(mesh, victim, PASSWORD, "192.0.2.201")
    if answer == "RESOURCE_EXHAUSTED":
        time.sleep(SLOWDOWN)
        answer = _login(mesh, victim, PASSWORD, "192.0.2.201")
    assert answer == "OK"
