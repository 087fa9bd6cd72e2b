"""JWT issue with auth's Ed25519 private key, the only key that can sign; verification
(mp3mesh/core/tokens.py) needs only the public keys auth publishes as a JWKS.

Key rotation: a token names its signing key in its ``kid`` header. The previous keys'
public halves stay published and accepted, so a new signing key can be rolled out while
tokens signed with the previous one run out (drop it after TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mp3mesh.core.tokens import ALGORITHM, TokenVerifier, key_id, public_jwk


class KeyFileError(Exception):
    """A key file is missing or holds no Ed25519 key; the message names the file."""


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM file holding either half of a key pair."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = _private_key(path, data).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    return _private_key(path, _read(path))


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc


def _private_key(path: str | Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM key without a passphrase") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def development_key(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``, made there (mode 0600) if there is none yet, so tokens outlive
    a restart of auth in development. Replicas starting at once agree on one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_private_key(path)
    key = Ed25519PrivateKey.generate()
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    return key


class TokenIssuer:
    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        issuer: str,
        audience: str,
        ttl: dt.timedelta,
        previous_keys: Sequence[Ed25519PublicKey] = (),
    ) -> None:
        """``signing_key`` signs; its public half and ``previous_keys`` verify."""
        self._signing_key = signing_key
        public = signing_key.public_key()
        self._kid = key_id(public)
        self.public_keys = [*previous_keys, public]
        self.verifier = TokenVerifier(
            {key_id(k): k for k in self.public_keys}, issuer=issuer, audience=audience
        )
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def issue(self, user_id: str, email: str) -> tuple[str, dt.datetime]:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expires = now + self.ttl
        claims = {
            "sub": user_id,
            "email": email,
            "iat": now,
            "exp": expires,
            "iss": self.issuer,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._kid}
        )
        return token, expires

    def jwks(self) -> list[dict[str, str]]:
        """The public keys tokens may be verified with, current one last."""
        return [public_jwk(key) for key in self.public_keys]
