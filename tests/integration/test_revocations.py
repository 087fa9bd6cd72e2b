"""Checking tokens from memory (mp3mesh/core/verification.py, mp3mesh/core/revocations.py): the
revocation set and its feed on the machine's RabbitMQ, and the JWKS a verifier keeps,
through a key rotation. The whole mesh doing it is tests/e2e/test_token_push.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack import AMQP_URL, drop_queues
from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core.revocations import (
    TOKEN_ROUTING_KEY,
    RevocationFeed,
    RevocationSet,
    revocation_message,
    user_revocation_message,
)
from mp3mesh.core.tokens import UNKNOWN_KEY, InvalidToken, public_jwk
from mp3mesh.core.verification import (
    REVOKED,
    USER_REVOKED,
    CannotVerify,
    LocalVerifier,
    RemoteKeys,
)
from tests.helpers import publish_notice, sign_token


def _claims(jti: str = "", ttl: float = 600) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "user-1",
        "email": "a@example.com",
        "iat": now,
        "exp": now + ttl,
        "iss": "mp3mesh-auth",
        "aud": "mp3mesh",
        "jti": jti or uuid.uuid4().hex,
    }


def test_revocations_expire_with_their_tokens() -> None:
    revocations = RevocationSet()
    assert not revocations.loaded
    revocations.load(
        [revocation_message("live", time.time() + 60), revocation_message("gone", time.time() - 1)]
    )
    assert revocations.loaded
    assert revocations.revoked("live") and not revocations.revoked("gone")
    revocations.add("short", time.time() + 0.2)
    assert revocations.revoked("short")
    time.sleep(0.3)
    revocations.prune()
    assert not revocations.revoked("short") and len(revocations) == 1


def _publish(exchange: str, jti: str, expires: float) -> None:
    publish_notice(AMQP_URL, exchange, TOKEN_ROUTING_KEY, revocation_message(jti, expires))


@pytest.fixture
def exchange() -> Iterator[str]:
    name = f"auth.revocations.test-{uuid.uuid4().hex[:10]}"
    yield name
    drop_queues(exchanges=[name])


def _until(condition: Any, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def test_the_feed_subscribes_before_the_snapshot_and_misses_nothing(exchange: str) -> None:
    """A revocation published while the snapshot is being read (so not in it) still
    arrives: the feed's queue was bound before. And one published later arrives too."""
    expires = time.time() + 600

    def snapshot() -> list[auth_pb2.Revocation]:
        _publish(exchange, "during-snapshot", expires)
        return [revocation_message("in-snapshot", expires)]

    feed = RevocationFeed(AMQP_URL, exchange, snapshot)
    feed.start()
    try:
        assert feed.revocations.wait_loaded(60)
        _until(lambda: feed.revocations.revoked("during-snapshot"))
        assert feed.revocations.revoked("in-snapshot")
        published = time.monotonic()
        _publish(exchange, "later", expires)
        _until(lambda: feed.revocations.revoked("later"))
        print(f"a published revocation applied {time.monotonic() - published:.3f} s later")
    finally:
        feed.close()


def test_the_feed_retries_a_failing_snapshot_and_stays_unloaded_meanwhile(exchange: str) -> None:
    calls: list[float] = []

    def snapshot() -> list[auth_pb2.Revocation]:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("auth is down")
        return []

    feed = RevocationFeed(AMQP_URL, exchange, snapshot)
    feed.start()
    try:
        assert not feed.revocations.wait_loaded(0.5)
        assert feed.revocations.wait_loaded(60) and len(calls) == 3
    finally:
        feed.close()


class FakeAuth:
    """Serves a JWKS the test changes, and counts the fetches (a stand-in for the
    GetJwks call only: the fetching, caching and refreshing under test are real)."""

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    async def __call__(self) -> Sequence[Mapping[str, Any]]:
        self.fetches += 1
        if self.down:
            raise ConnectionError("auth is down")
        return [public_jwk(key.public_key()) for key in self.keys]


def _verifier(auth: FakeAuth, revocations: RevocationSet | None = None) -> LocalVerifier:
    if revocations is None:
        revocations = RevocationSet()
        revocations.load([])
    return LocalVerifier(RemoteKeys(auth, min_interval=0.2), revocations)


def test_a_rotation_keeps_old_tokens_and_new_keys_are_fetched_on_their_first_token() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = FakeAuth(old)
    verifier = _verifier(auth)
    old_token = sign_token(_claims(), old)
    assert asyncio.run(verifier.verify(old_token)).user_id == "user-1"
    assert auth.fetches == 1
    # auth restarted with a new signing key, the old one listed as previous.
    auth.keys = [old, new]
    asyncio.run(verifier.verify(old_token))
    assert auth.fetches == 1, "a known key needs no fetch"
    time.sleep(0.25)  # past min_interval since the first fetch
    asyncio.run(verifier.verify(sign_token(_claims(), new)))
    assert auth.fetches == 2, "a token of a new key fetched the JWKS once"
    # The old key dropped after the tokens' lifetime: refused at the next refresh.
    auth.keys = [new]
    time.sleep(0.25)
    with pytest.raises(InvalidToken, match="no longer accepted"):
        asyncio.run(verifier.verify(sign_token(_claims(), Ed25519PrivateKey.generate())))
    with pytest.raises(InvalidToken) as refused:
        asyncio.run(verifier.verify(old_token))
    assert str(refused.value) == UNKNOWN_KEY


def test_unknown_keys_are_fetched_for_at_most_once_per_interval() -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    verifier = _verifier(auth)

    async def many() -> None:
        await verifier.verify(sign_token(_claims(), key))
        for _ in range(50):
            with pytest.raises(InvalidToken):
                await verifier.verify(sign_token(_claims(), Ed25519PrivateKey.generate()))

    asyncio.run(many())
    assert auth.fetches <= 2


def test_keys_held_outlive_auth_and_none_held_is_unavailable() -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    auth.down = True
    verifier = _verifier(auth)
    with pytest.raises(CannotVerify):
        asyncio.run(verifier.verify(sign_token(_claims(), key)))
    auth.down = False
    time.sleep(0.25)
    asyncio.run(verifier.verify(sign_token(_claims(), key)))
    auth.down = True
    verifier.keys.refresh = 0  # type: ignore[union-attr] # due for a refresh: it fails
    time.sleep(0.25)
    asyncio.run(verifier.verify(sign_token(_claims(), key)))


def test_revoked_and_not_yet_loaded() -> None:
    key = Ed25519PrivateKey.generate()
    revocations = RevocationSet()
    verifier = _verifier(FakeAuth(key), revocations)
    token = sign_token(_claims("jti-1"), key)
    with pytest.raises(CannotVerify):
        asyncio.run(verifier.verify(token))
    revocations.load([revocation_message("jti-1", time.time() + 600)])
    with pytest.raises(InvalidToken) as refused:
        asyncio.run(verifier.verify(token))
    assert str(refused.value) == REVOKED
    asyncio.run(verifier.verify(sign_token(_claims("jti-2"), key)))


def test_a_users_revocation_refuses_the_tokens_issued_before_it_only() -> None:
    key = Ed25519PrivateKey.generate()
    revocations = RevocationSet()
    now = int(time.time())
    revocations.load([user_revocation_message("user-1", now, now + 600)])
    verifier = _verifier(FakeAuth(key), revocations)
    earlier = sign_token({**_claims(), "iat": now - 1}, key)
    with pytest.raises(InvalidToken) as refused:
        asyncio.run(verifier.verify(earlier))
    assert str(refused.value) == USER_REVOKED
    asyncio.run(verifier.verify(sign_token({**_claims(), "iat": now}, key)))
    asyncio.run(verifier.verify(sign_token({**_claims(), "sub": "user-2", "iat": now - 1}, key)))
    revocations.add_user("user-3", now, now - 1)  # already expired: not kept
    assert len(revocations) == 1
