"""auth without services: tokens, credentials parsing, key files and the settings guards."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from mp3mesh.auth.settings import AuthSettings
from mp3mesh.auth.tokens import (
    KeyFileError,
    TokenIssuer,
    development_key,
    load_private_key,
    load_public_key,
    private_pem,
)
from mp3mesh.converter.settings import ConverterSettings
from mp3mesh.core.credentials import basic_credentials, bearer_token
from mp3mesh.core.tokens import InvalidToken, TokenVerifier, key_id, keys_from_jwks
from tests.helpers import sign_token

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(KEY, "mp3mesh-auth", "mp3mesh", dt.timedelta(minutes=5))


def _sign(claims: dict[str, Any], key: Ed25519PrivateKey = KEY) -> str:
    return sign_token(claims, key)


def test_token_round_trip_carries_every_claim(issuer: TokenIssuer) -> None:
    token, expires = issuer.issue("user-1", "a@example.com")
    claims = jwt.decode(token, KEY.public_key(), algorithms=["EdDSA"], audience="mp3mesh")
    assert set(claims) == {"sub", "email", "iat", "exp", "iss", "aud", "jti"}
    assert jwt.get_unverified_header(token) == {
        "alg": "EdDSA",
        "typ": "JWT",
        "kid": key_id(KEY.public_key()),
    }
    verified = issuer.verifier.verify(token)
    assert (verified.user_id, verified.email, verified.expires) == (
        "user-1",
        "a@example.com",
        expires,
    )
    assert issuer.issue("user-1", "a@example.com")[0] != token, "jti makes each token unique"


def _public_as_hmac_secret(c: dict[str, Any]) -> str:
    """Key confusion: HS256 keyed with the published public key, naming it."""
    secret = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return jwt.encode(c, secret, algorithm="HS256", headers={"kid": key_id(KEY.public_key())})


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda c: _sign(c, Ed25519PrivateKey.generate()), "algorithm no longer accepted"),
        (
            lambda c: sign_token(c, Ed25519PrivateKey.generate(), kid=key_id(KEY.public_key())),
            "signature",
        ),
        (lambda c: _sign({**c, "exp": c["iat"]}), "expired"),
        (lambda c: _sign({**c, "aud": "other"}), "audience"),
        (lambda c: _sign({**c, "iss": "other"}), "issuer"),
        (lambda c: _sign({k: v for k, v in c.items() if k != "jti"}), "jti"),
        (lambda c: jwt.encode(c, KEY, algorithm="EdDSA"), "names no signing key"),
        (_public_as_hmac_secret, "algorithm no longer accepted"),
        (
            lambda c: jwt.encode(
                c, None, algorithm="none", headers={"kid": key_id(KEY.public_key())}
            ),
            "not a signed JWT",
        ),
    ],
    ids=[
        "unknown-key",
        "forged",
        "expired",
        "audience",
        "issuer",
        "missing-jti",
        "no-kid",
        "hs256-with-public-key",
        "alg-none",
    ],
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
        issuer.verifier.verify(make(claims))


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ARRAY, OBJECT, ALG = _segment(b"[1]"), _segment(b"{}"), _segment(b'{"alg":"EdDSA"}')


@pytest.mark.parametrize(
    "token",
    [
        f"{ARRAY}.{OBJECT}.c2ln",  # a header that is no JSON object
        f"{ALG}.{ARRAY}.c2ln",  # nor the claims
        f"{_segment(b'{not json')}.{OBJECT}.c2ln",
        f"{OBJECT}.{_segment(bytes([0xFF, 0xFE]))}.c2ln",  # no UTF-8
        "e30.e30.c",  # a signature of one base64 character: no bytes at all
        "a.b.c.d",
        "e30..c2ln",
    ],
    ids=[
        "header-array",
        "claims-array",
        "header-not-json",
        "claims-not-utf8",
        "signature-not-base64",
        "four-segments",
        "empty-segment",
    ],
)
def test_tokens_that_are_no_signed_jwt_are_malformed(issuer: TokenIssuer, token: str) -> None:
    with pytest.raises(InvalidToken, match="not a signed JWT"):
        issuer.verifier.verify(token)


def test_jwks_publishes_public_keys_only_and_verifies_alone(issuer: TokenIssuer) -> None:
    jwks = issuer.jwks()
    assert [set(k) for k in jwks] == [{"kty", "crv", "x", "kid", "alg", "use"}]
    assert "d" not in jwks[0]
    token, _ = issuer.issue("user-1", "a@example.com")
    assert TokenVerifier(keys_from_jwks(jwks)).verify(token).user_id == "user-1"
    lying = [{**jwks[0], "kid": "someone-elses"}]
    assert set(keys_from_jwks(lying)) == {jwks[0]["kid"]}, "a kid is the key's thumbprint"


def test_credentials_from_metadata() -> None:
    basic = base64.b64encode(b"a@example.com:pa:ss").decode()
    assert basic_credentials([("authorization", f"Basic {basic}")]) == ("a@example.com", "pa:ss")
    assert basic_credentials([("authorization", "Basic !!!")]) is None
    assert basic_credentials([("authorization", "Bearer x")]) is None
    assert bearer_token([("Authorization", "bearer abc ")]) == "abc"
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token(None) is None


def test_production_refuses_to_start_without_a_signing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MP3MESH_ENV", "production")
    monkeypatch.setenv("AMQP_URL", "amqp://mesh:pw@rabbit/%2F")
    monkeypatch.setenv("ALLOW_PLAINTEXT_GRPC", "true")
    with pytest.raises(ValidationError, match="JWT_SIGNING_KEY_FILE"):
        AuthSettings()
    monkeypatch.setenv("JWT_SIGNING_KEY_FILE", "/etc/mp3mesh/jwt/signing-key.pem")
    assert AuthSettings().production
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@rabbit/%2F")
    with pytest.raises(ValidationError, match="guest"):
        AuthSettings()  # revocations reach auth over the broker
    with pytest.raises(ValidationError, match="guest"):
        ConverterSettings()


def test_tokens_of_a_previous_key_are_accepted_until_it_is_dropped() -> None:
    ttl = dt.timedelta(minutes=5)
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = TokenIssuer(old_key, "mp3mesh-auth", "mp3mesh", ttl)
    old_token, _ = before.issue("user-1", "a@example.com")
    rotated = TokenIssuer(
        new_key, "mp3mesh-auth", "mp3mesh", ttl, previous_keys=[old_key.public_key()]
    )
    new_token, _ = rotated.issue("user-1", "a@example.com")
    new_kid = key_id(new_key.public_key())
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != key_id(old_key.public_key())
    assert [k["kid"] for k in rotated.jwks()][-1] == new_kid, "the signing key is published"
    verify = rotated.verifier.verify
    assert verify(old_token).user_id == verify(new_token).user_id == "user-1"
    after = TokenIssuer(new_key, "mp3mesh-auth", "mp3mesh", ttl)
    with pytest.raises(InvalidToken, match="algorithm no longer accepted"):
        after.verifier.verify(old_token)


def test_key_files_development_key_and_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "key.pem"
    made = development_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert private_pem(development_key(path)) == private_pem(made), "made once, then kept"
    assert key_id(load_public_key(path)) == key_id(made.public_key())
    (tmp_path / "rsa.pem").write_text("not a key")
    with pytest.raises(KeyFileError, match=r"rsa\.pem"):
        load_private_key(tmp_path / "rsa.pem")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem")


def test_production_needs_mtls_or_the_waiver_and_hides_reflection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MP3MESH_ENV", "production")
    monkeypatch.setenv("JWT_SIGNING_KEY_FILE", "/etc/mp3mesh/jwt/signing-key.pem")
    monkeypatch.setenv("AMQP_URL", "amqps://mp3mesh:secret@rabbitmq.example.com:5671/mp3mesh")
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
