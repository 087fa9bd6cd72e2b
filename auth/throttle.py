"""What makes guessing passwords slow and cheap to refuse: Login and Register calls per
client address, failed-login limits per account and per client address (the ``limits``
library's moving windows), and a bound on how many argon2 hashes run at once, each costing
64 MiB (Register in a pool of its own, so a flood of registrations cannot keep Login's
hashes waiting).

The limits live here, on the gRPC methods, rather than on the edges' URL paths: every
spelling of a path the edges route to Login (``/login/``, ``/v1/sessions``, percent-encoded
letters, native gRPC) ends in the same method, and so in the same counts.

Limits are kept in this process's memory: with several auth replicas each counts its own
attempts, so an attacker spread over N replicas gets N times the budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from meshcore.client_address import edge_address, peer_host

T = TypeVar("T")


class Throttled(Exception):
    """Refused before any work: ``message`` says why, ``retry_after`` when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def client_address(
    metadata: Iterable[tuple[str, str | bytes]] | None, peer: str, *, from_edge: bool = True
) -> str:
    """Who is calling: the address the edge established (meshcore.client_address) when
    the caller is an edge (``from_edge``), else the gRPC peer's host.

    Only the edges and the gateway can reach auth (k8s network policies; with mTLS,
    auth also knows the caller's identity and believes the address from edges only).
    """
    if from_edge and (address := edge_address(metadata)) is not None:
        return address
    return peer_host(peer)


class AddressLimits:
    """Per client address, counted on the operation itself (so every path that reaches
    Login or Register counts alike, whatever edge and URL spelling it came through):
    Login calls per minute, Register calls per hour. Past either, Throttled saying when
    to try again; nothing is looked up or hashed."""

    def __init__(self, logins_per_minute: int, registrations_per_hour: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._logins = RateLimitItemPerMinute(logins_per_minute)
        self._registrations = RateLimitItemPerHour(registrations_per_hour)

    def admit_login(self, address: str) -> None:
        self._admit(self._logins, f"login\0{address}", "too many login attempts from your address")

    def admit_registration(self, address: str) -> None:
        self._admit(
            self._registrations,
            f"register\0{address}",
            "too many accounts registered from your address",
        )

    def _admit(self, limit: RateLimitItem, key: str, what: str) -> None:
        if not self._limiter.hit(limit, key):
            wait = _wait(self._limiter, limit, key)
            raise Throttled(f"{what}; try again in {wait} s", wait)


def _wait(limiter: MovingWindowRateLimiter, limit: RateLimitItem, key: str) -> int:
    """Whole seconds until ``limit`` lets one more through for ``key``."""
    reset = limiter.get_window_stats(limit, key).reset_time
    return max(1, math.ceil(reset - time.time()))


class LoginThrottle:
    """Failed logins counted per account and per client address; either over its limit
    refuses further attempts until the window lets one through again."""

    def __init__(self, per_email: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_email = parse(per_email)
        self._per_address = parse(per_address)

    def check(self, email: str, address: str) -> None:
        """Raise Throttled if this account or this address has failed too often lately."""
        for limit, key, who in self._keys(email, address):
            if not self._limiter.test(limit, key):
                raise Throttled(
                    f"too many failed logins {who}; try again in {self._wait(limit, key)} s",
                    self._wait(limit, key),
                )

    def failed(self, email: str, address: str) -> None:
        for limit, key, _ in self._keys(email, address):
            self._limiter.hit(limit, key)

    def succeeded(self, email: str) -> None:
        """The account's own count starts over; the address's stays (one good password
        must not reset an address trying many accounts)."""
        self._limiter.clear(self._per_email, f"email\0{email}")

    def _keys(self, email: str, address: str) -> Sequence[tuple[RateLimitItem, str, str]]:
        return [
            (self._per_email, f"email\0{email}", "for this account"),
            (self._per_address, f"address\0{address}", "from your address"),
        ]

    def _wait(self, limit: RateLimitItem, key: str) -> int:
        return _wait(self._limiter, limit, key)


class HashBound:
    """At most ``concurrent`` argon2 hashes at once (each allocates its memory cost), and
    at most ``waiting`` more queued; past that a call is refused at once instead of
    queueing memory and time without end."""

    def __init__(self, concurrent: int, waiting: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="argon2")
        self._slots = concurrent + waiting
        self._busy = 0

    async def run(self, work: Callable[[], T]) -> T:
        if self._busy >= self._slots:
            raise Throttled("the server is busy checking other passwords; try again in 1 s", 1)
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._busy -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
