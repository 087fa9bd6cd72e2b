"""What makes guessing passwords slow and cheap to refuse: failed-login limits per account
and per client address (the ``limits`` library's moving windows), and a bound on how many
argon2 hashes run at once, each costing 64 MiB.

Limits are kept in this process's memory: with several auth replicas each counts its own
attempts, so an attacker spread over N replicas gets N times the budget; Envoy's per-address
limit in front of them is shared by nothing either, and stays the first line.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

T = TypeVar("T")


class Throttled(Exception):
    """Refused before any work: ``message`` says why, ``retry_after`` when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def client_address(metadata: Iterable[tuple[str, str | bytes]] | None, peer: str) -> str:
    """Who is calling: the address the edge saw (the last ``x-forwarded-for`` entry, which
    Envoy and the shim append), else the gRPC peer's host.

    A caller that reaches auth directly could send its own ``x-forwarded-for``; in a
    deployment only the edges and the gateway can reach auth (k8s network policies).
    """
    for key, value in metadata or ():
        if key.lower() == "x-forwarded-for":
            text = value.decode() if isinstance(value, bytes) else value
            last = text.rsplit(",", 1)[-1].strip()
            if last:
                return last
    # "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"
    host = peer.split(":", 1)[-1].rsplit(":", 1)[0]
    return host.strip("[]") or peer


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
        reset = self._limiter.get_window_stats(limit, key).reset_time
        return max(1, math.ceil(reset - time.time()))


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
