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
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from mp3mesh.core.client_address import edge_address, peer_host

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
    """Who is calling: the address the edge established (mp3mesh.core.client_address) when
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
    """Failed logins, counted before the password is hashed (docs/security.md has the rule).

    - per account and client address: past ``per_account_address`` failures, that address
      may not try that account until the window frees one. An attacker locks out only
      himself: the owner, from another address, is not refused.
    - per client address, over all accounts: past ``per_address``, that address may not
      try any account.
    - per account, over all addresses: past ``per_account`` failures, the account is
      slowed down, not locked: one attempt per ``slowdown_seconds`` from addresses it has
      not logged in from lately, and none slowed from those it has (the owner's).

    An attempt counts as a failure from the moment it is admitted until its password
    proves good, so guesses sent in parallel cannot all pass a check made before any of
    them has failed.
    """

    def __init__(
        self,
        per_account_address: str,
        per_address: str,
        per_account: str = "1000000/hour",
        slowdown_seconds: int = 10,
        *,
        known_addresses: int = 100_000,
        known_for_seconds: float = 30 * 86400,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_account_address = parse(per_account_address)
        self._per_address = parse(per_address)
        self._per_account = parse(per_account)
        self._slowdown = parse(f"1 per {slowdown_seconds} seconds")
        self._in_flight: Counter[str] = Counter()
        # (account, address) -> when it stops being known: good logins of late.
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._known_max = known_addresses
        self._known_for = known_for_seconds

    def begin(self, email: str, address: str) -> None:
        """Admit one attempt (counted as failing until :meth:`succeeded`), or raise
        Throttled saying when to try again."""
        refusals = [
            (self._per_account_address, f"pair\0{email}\0{address}", "for this account"),
            (self._per_address, f"address\0{address}", "from your address"),
        ]
        for limit, key, who in refusals:
            if not self._admits(limit, key):
                wait = max(_wait(self._limiter, limit, key), 1)
                raise Throttled(f"too many failed logins {who}; try again in {wait} s", wait)
        account = f"account\0{email}"
        if not self._admits(self._per_account, account) and not self._known_address(email, address):
            slow = f"slow\0{email}"
            if not self._limiter.hit(self._slowdown, slow):
                wait = _wait(self._limiter, self._slowdown, slow)
                raise Throttled(
                    f"too many failed logins for this account; try again in {wait} s", wait
                )
        for key in self._keys(email, address):
            self._in_flight[key] += 1

    def failed(self, email: str, address: str) -> None:
        self._settle(email, address)
        limits = (self._per_account_address, self._per_address, self._per_account)
        for limit, key in zip(limits, self._keys(email, address), strict=True):
            self._limiter.hit(limit, key)

    def succeeded(self, email: str, address: str) -> None:
        """The attempt counts for nothing; this account's count from this address starts
        over (the address's over all accounts stays: one good password must not reset an
        address trying many), and the address is known to the account from now on."""
        self._settle(email, address)
        self._limiter.clear(self._per_account_address, self._keys(email, address)[0])
        self._known[(email, address)] = time.monotonic() + self._known_for
        self._known.move_to_end((email, address))
        while len(self._known) > self._known_max:
            self._known.popitem(last=False)

    def abandoned(self, email: str, address: str) -> None:
        """An admitted attempt that never reached the password (busy, cancelled)."""
        self._settle(email, address)

    def _settle(self, email: str, address: str) -> None:
        for key in self._keys(email, address):
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def _admits(self, limit: RateLimitItem, key: str) -> bool:
        """One more failure fits in ``limit``, counting the attempts still in flight."""
        remaining = self._limiter.get_window_stats(limit, key).remaining
        return remaining - self._in_flight[key] > 0

    def _known_address(self, email: str, address: str) -> bool:
        until = self._known.get((email, address))
        return until is not None and until > time.monotonic()

    @staticmethod
    def _keys(email: str, address: str) -> tuple[str, str, str]:
        return (f"pair\0{email}\0{address}", f"address\0{address}", f"account\0{email}")


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
