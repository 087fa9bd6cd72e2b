"""Revoked tokens, pushed to every verifier (auth, each gateway, the shim) over RabbitMQ.

auth records a revocation (a logout) in PostgreSQL, then publishes it, an
``mp3mesh.auth.v1.Revocation`` (the token's ``jti`` and expiry), to the revocations topic
exchange; a password change or a deleted account revokes every token of the user
issued until then. Each verifier binds a queue of its own (exclusive, auto-delete) to it and keeps
the set in memory, so checking a token reads no database. A verifier subscribes first,
then takes the snapshot (AuthService.ListRevocations, or auth's own table) and only then
applies the queued notices: a revocation made while the snapshot was read is in one or the
other, so a (re)start misses none. A lost subscription is renewed the same way. Entries
go once their token has expired: an expired token is refused anyway.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

import structlog
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core.subscriptions import Subscription

log = structlog.get_logger()

REVOCATION_TYPE = auth_pb2.Revocation.DESCRIPTOR.full_name
# Routing keys: one token's revocation (a logout), a user's tokens (password, deletion).
TOKEN_ROUTING_KEY = "token"  # noqa: S105 - a routing key, not a secret
USER_ROUTING_KEY = "user"
# How often expired entries are dropped.
PRUNE_SECONDS = 60.0

# Every live revocation, as the messages that push them.
Snapshot = Callable[[], Iterable[auth_pb2.Revocation]]


def _seconds(timestamp: Timestamp) -> float:
    return timestamp.ToNanoseconds() / 1e9


class RevocationSet:
    """Revoked tokens by jti, and users whose tokens issued before a time are revoked,
    each with the time it can be forgotten. Written by one thread, read by any: a
    dictionary's single get or set is atomic under CPython's GIL."""

    def __init__(self) -> None:
        self._entries: dict[str, float] = {}  # jti -> expiry
        self._users: dict[str, tuple[float, float]] = {}  # user -> (issued before, expiry)
        self._loaded = threading.Event()

    @property
    def loaded(self) -> bool:
        """True once a snapshot is in: before that, a revoked token could pass."""
        return self._loaded.is_set()

    def wait_loaded(self, timeout: float) -> bool:
        return self._loaded.wait(timeout)

    def add(self, jti: str, expires: float) -> None:
        if expires > time.time():
            self._entries[jti] = max(expires, self._entries.get(jti, 0.0))

    def add_user(self, user_id: str, issued_before: float, expires: float) -> None:
        if expires > time.time():
            before, until = self._users.get(user_id, (0.0, 0.0))
            self._users[user_id] = (max(before, issued_before), max(until, expires))

    def apply(self, message: auth_pb2.Revocation) -> None:
        expires = _seconds(message.expire_time)
        if message.user_id:
            self.add_user(message.user_id, _seconds(message.issued_before), expires)
        if message.token_id:
            self.add(message.token_id, expires)

    def load(self, snapshot: Iterable[auth_pb2.Revocation]) -> None:
        for message in snapshot:
            self.apply(message)
        self._loaded.set()

    def revoked(self, jti: str) -> bool:
        return jti in self._entries

    def user_revoked(self, user_id: str, issued_at: float) -> bool:
        """Every token of ``user_id`` issued before some time after ``issued_at`` (the
        token's ``iat``) was revoked."""
        user = self._users.get(user_id)
        return user is not None and issued_at < user[0]

    def prune(self) -> None:
        now = time.time()
        for jti in [jti for jti, expires in self._entries.items() if expires <= now]:
            self._entries.pop(jti, None)
        for user in [user for user, (_, expires) in self._users.items() if expires <= now]:
            self._users.pop(user, None)

    def __len__(self) -> int:
        return len(self._entries) + len(self._users)


def revocation_message(jti: str, expires: float) -> auth_pb2.Revocation:
    """One token's revocation (``expires``: its expiry, a Unix time)."""
    message = auth_pb2.Revocation(token_id=jti)
    message.expire_time.FromNanoseconds(round(expires * 1e9))
    return message


def user_revocation_message(
    user_id: str, issued_before: float, expires: float
) -> auth_pb2.Revocation:
    """The revocation of every token of ``user_id`` issued before ``issued_before``,
    kept until ``expires`` (when the last of them has expired)."""
    message = auth_pb2.Revocation(user_id=user_id)
    message.issued_before.FromNanoseconds(round(issued_before * 1e9))
    message.expire_time.FromNanoseconds(round(expires * 1e9))
    return message


class RevocationFeed:
    """Keeps a :class:`RevocationSet` current: one thread owns the broker connection
    (pika connections are not thread-safe), subscribes, loads the snapshot, applies
    notices as they come (within ``poll`` seconds), and renews all of it when the
    connection is lost."""

    def __init__(
        self,
        url: str,
        exchange: str,
        snapshot: Snapshot,
        revocations: RevocationSet | None = None,
        poll: float = 0.2,
    ) -> None:
        self.snapshot = snapshot
        self.revocations = revocations if revocations is not None else RevocationSet()
        self._pruned = time.monotonic()
        # Notices published once the queue is bound wait in it while the snapshot is
        # read; processing them after it loses none.
        self._subscription = Subscription(
            url,
            exchange,
            self._on_message,
            name="revocations",
            on_subscribed=self._load_snapshot,
            between=self._prune_now_and_then,
            poll=poll,
        )

    def start(self) -> None:
        self._subscription.start()

    async def started(self, wait: float = 10.0) -> None:
        """Start, and wait up to ``wait`` seconds for the snapshot, so a verifier that
        has just started does not answer UNAVAILABLE; past that, it serves anyway and
        answers so until the snapshot is in."""
        self.start()
        if not await asyncio.to_thread(self.revocations.wait_loaded, wait):
            log.warning("revocations not loaded yet: tokens cannot be checked until they are")

    def close(self) -> None:
        self._subscription.close()

    def _on_message(self, channel, method, properties, body: bytes) -> None:  # type: ignore[no-untyped-def]
        if properties.type != REVOCATION_TYPE:
            return
        message = auth_pb2.Revocation()
        try:
            message.ParseFromString(body)
        except DecodeError:
            log.warning("undecodable revocation dropped")
            return
        self.revocations.apply(message)

    def _load_snapshot(self) -> None:
        """The snapshot, tried until it comes (auth may be starting or down): until the
        first one, the set is not ``loaded``; after, it stays in use while this retries."""
        stopping = self._subscription.stopping
        while not stopping.is_set():
            try:
                self.revocations.load(self.snapshot())
                log.info("revocations loaded", count=len(self.revocations))
                return
            except Exception as exc:
                log.warning("cannot read the revocations' snapshot; retrying", error=repr(exc))
                stopping.wait(1)

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned > PRUNE_SECONDS:
            self.revocations.prune()
            self._pruned = time.monotonic()
