"""auth on its own: tokens, credentials parsing, settings guards, and the user store on a
real PostgreSQL database."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterator

import jwt
import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from auth.settings import AuthSettings
from auth.store import MIGRATIONS, EmailTaken, UserStore
from auth.tokens import InvalidToken, TokenIssuer, key_id
from meshcore.credentials import basic_credentials, bearer_token
from meshcore.migrations import migrate
from tests.helpers import temp_database

SECRET = "s" * 48


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SECRET, "mp3mesh-auth", "mp3mesh", dt.timedelta(minutes=5))


def test_token_round_trip_carries_every_claim(issuer: TokenIssuer) -> None:
    token, expires = issuer.issue("user-1", "a@example.com")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="mp3mesh")
    assert set(claims) == {"sub", "email", "iat", "exp", "iss", "aud", "jti"}
    verified = issuer.verify(token)
    assert (verified.user_id, verified.email, verified.expires) == (
        "user-1",
        "a@example.com",
        expires,
    )
    assert issuer.issue("user-1", "a@example.com")[0] != token, "jti makes each token unique"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (
            lambda c: jwt.encode(c, "another-secret-another-secret-another", algorithm="HS256"),
            "signature",
        ),
        (lambda c: jwt.encode({**c, "exp": c["iat"]}, SECRET, algorithm="HS256"), "expired"),
        (lambda c: jwt.encode({**c, "aud": "other"}, SECRET, algorithm="HS256"), "audience"),
        (lambda c: jwt.encode({**c, "iss": "other"}, SECRET, algorithm="HS256"), "issuer"),
        (
            lambda c: jwt.encode(
                {k: v for k, v in c.items() if k != "jti"}, SECRET, algorithm="HS256"
            ),
            "jti",
        ),
        (lambda c: jwt.encode(c, SECRET * 2, algorithm="HS512"), "alg value is not allowed"),
        (lambda c: jwt.encode(c, None, algorithm="none"), "alg value is not allowed"),
    ],
    ids=["forged", "expired", "audience", "issuer", "missing-jti", "other-alg", "alg-none"],
)
def test_untrustworthy_tokens_are_refused(issuer: TokenIssuer, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    claims = {
        "sub": "u",
        "email": "e@example.com",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "iss": "mp3mesh-auth",
        "aud": "mp3mesh",
        "jti": "j",
    }
    with pytest.raises(InvalidToken, match=f"(?i){needle}"):
        issuer.verify(make(claims))


def test_credentials_from_metadata() -> None:
    basic = base64.b64encode(b"a@example.com:pa:ss").decode()
    assert basic_credentials([("authorization", f"Basic {basic}")]) == ("a@example.com", "pa:ss")
    assert basic_credentials([("authorization", "Basic !!!")]) is None
    assert basic_credentials([("authorization", "Bearer x")]) is None
    assert bearer_token([("Authorization", "bearer abc ")]) == "abc"
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token(None) is None


def test_production_refuses_missing_or_weak_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP3MESH_ENV", "production")
    monkeypatch.setenv("AMQP_URL", "amqp://mesh:pw@rabbit/%2F")
    monkeypatch.setenv("ALLOW_PLAINTEXT_GRPC", "true")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        AuthSettings()
    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        AuthSettings()
    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert AuthSettings().production
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@rabbit/%2F")
    with pytest.raises(ValidationError, match="guest"):
        AuthSettings()


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


def test_tokens_of_a_previous_key_are_accepted_until_it_is_dropped() -> None:
    ttl = dt.timedelta(minutes=5)
    old_key, new_key = "o" * 48, "n" * 48
    before = TokenIssuer(old_key, "mp3mesh-auth", "mp3mesh", ttl)
    old_token, _ = before.issue("user-1", "a@example.com")
    rotated = TokenIssuer(new_key, "mp3mesh-auth", "mp3mesh", ttl, previous_secrets=[old_key])
    new_token, _ = rotated.issue("user-1", "a@example.com")
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(new_key) != key_id(old_key)
    assert rotated.verify(old_token).user_id == rotated.verify(new_token).user_id == "user-1"
    after = TokenIssuer(new_key, "mp3mesh-auth", "mp3mesh", ttl)
    with pytest.raises(InvalidToken, match="key no longer accepted"):
        after.verify(old_token)
    assert (
        after.verify(new_token).token_id
        == jwt.decode(new_token, new_key, algorithms=["HS256"], audience="mp3mesh")["jti"]
    )
    with pytest.raises(InvalidToken, match="signature"):  # a kid does not choose a key for a forger
        after.verify(
            jwt.encode({"sub": "x"}, "f" * 48, algorithm="HS256", headers={"kid": key_id(new_key)})
        )


def test_production_needs_mtls_or_the_waiver_and_hides_reflection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MP3MESH_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    with pytest.raises(ValidationError, match="refuses plaintext gRPC"):
        AuthSettings()
    monkeypatch.setenv("TLS_CA_FILE", "/etc/mp3mesh/ca.pem")
    with pytest.raises(ValidationError, match="together"):
        AuthSettings()
    monkeypatch.setenv("TLS_CERT_FILE", "/etc/mp3mesh/tls.crt")
    monkeypatch.setenv("TLS_KEY_FILE", "/etc/mp3mesh/tls.key")
    settings = AuthSettings()
    assert settings.grpc_tls and not settings.reflection
    monkeypatch.setenv("GRPC_REFLECTION", "true")
    assert AuthSettings().reflection
    for name in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALLOW_PLAINTEXT_GRPC", "true")
    assert not AuthSettings().grpc_tls
    monkeypatch.setenv("MP3MESH_ENV", "development")
    monkeypatch.delenv("GRPC_REFLECTION")
    assert AuthSettings().reflection
