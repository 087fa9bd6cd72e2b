"""auth's user store on a real PostgreSQL database: migrations, hashes, revocations."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack import temp_database
from mp3mesh.auth.store import MIGRATIONS, EmailTaken, UserStore
from mp3mesh.core.migrations import migrate
from mp3mesh.core.tokens import key_id

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with temp_database("mp3mesh_auth") as url:
        yield url


def test_migrations_are_idempotent_and_store_keeps_hashes_only(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    migrate(database_url, MIGRATIONS)  # a second replica starting
    store = UserStore(database_url)
    hasher = PasswordHasher()
    try:
        user = store.create("b@example.com", hasher.hash("hunter2hunter2"))
        assert user.password_hash.startswith("$argon2id$")
        assert "hunter2" not in user.password_hash
        assert store.by_email("b@example.com") == user
        assert store.by_id(user.id) == user
        assert store.by_id(str(uuid.uuid4())) is None
        with pytest.raises(EmailTaken):
            store.create("b@example.com", "x")
    finally:
        store.close()


def test_live_revocations_are_the_snapshot_of_unexpired_ones(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    store = UserStore(database_url)
    now = dt.datetime.now(dt.UTC)
    try:
        store.revoke("gone", now - dt.timedelta(seconds=1))
        later, soon = uuid.uuid4().hex, uuid.uuid4().hex
        store.revoke(later, now + dt.timedelta(hours=1))
        store.revoke(soon, now + dt.timedelta(minutes=1))
        live = [jti for jti, _ in store.live_revocations()]
        assert "gone" not in live
        assert live.index(soon) < live.index(later), "soonest to expire first"
    finally:
        store.close()
