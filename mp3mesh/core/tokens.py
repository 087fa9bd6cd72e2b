"""Checking mp3mesh's JWTs with public keys only, for every verifier (auth, the gateway,
the shim): one pinned algorithm (EdDSA, Ed25519), our issuer, our audience, every claim
present, and a ``kid`` header naming one of the published keys.

Keys travel as a JWKS (RFC 7517) of OKP keys; a key's ``kid`` is its RFC 7638 thumbprint,
so it names the key without anyone having to agree on names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.utils import base64url_decode

from mp3mesh.core import defaults

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["sub", "email", "iat", "exp", "iss", "aud", "jti"]
ISSUER = defaults.JWT_ISSUER
AUDIENCE = defaults.JWT_AUDIENCE


# What a refused token is told, by what is wrong with it. Envoy's jwt_authn says the
# same for the same token (envoy/render.py maps its words to these; tests check both
# edges answer alike), so its categories are these: an algorithm other than EdDSA is
# "no key for it", a token without a signature (alg none) is malformed.
MISSING = "missing bearer token: log in and send 'authorization: Bearer <token>'"
MALFORMED = "token is invalid: not a signed JWT"
UNKNOWN_KEY = "token was signed with a key or algorithm no longer accepted; log in again"
BAD_SIGNATURE = "token signature is invalid"
EXPIRED = "token has expired; log in again"
WRONG_AUDIENCE = "token is invalid: Audience doesn't match"
WRONG_ISSUER = "token is invalid: Invalid issuer"


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why in words a user can act on."""


class UnknownKey(InvalidToken):
    """The token names a key this verifier does not hold: new keys may have been published."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    email: str
    expires: dt.datetime
    token_id: str  # the jti
    issued_at: float = 0.0  # the iat, a Unix time


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the key: the same ``kid`` wherever it is computed."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The key as a JWK: public parts only, pinned to EdDSA signatures."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw(key)),
        "kid": key_id(key),
        "alg": ALGORITHM,
        "use": "sig",
    }


def keys_from_jwks(jwks: Iterable[Mapping[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS by ``kid``; keys of other types are skipped,
    and a ``kid`` that is not the key's thumbprint is recomputed rather than trusted."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
            continue
        padded = str(jwk["x"]) + "=" * (-len(str(jwk["x"])) % 4)
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(padded))
        keys[key_id(key)] = key
    return keys


class TokenVerifier:
    """Verifies tokens against the public keys it holds (``kid`` -> key)."""

    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> None:
        self.keys = dict(keys)
        self.issuer = issuer
        self.audience = audience

    def _check_claims_first(self, token: str) -> dict[str, Any]:
        """Issuer, expiry, audience, before the key: the order Envoy's jwt_authn checks
        them in, so a token wrong in several ways is told the same at every edge. The
        signature is checked after, and nothing is accepted without it. Returns the
        unverified header (parsed here once: the key is chosen by it)."""
        segments = token.encode().split(b".")
        if len(segments) != 3 or not all(segments):
            raise InvalidToken(MALFORMED)
        # Read as PyJWT reads a token (its base64url decoding, JSON objects), but not with
        # its unverified decode, which parses the whole token a second time (11 % of a
        # check); only the verified decode in verify() decides what is accepted.
        try:
            header, claims = (json.loads(base64url_decode(part)) for part in segments[:2])
            base64url_decode(segments[2])
        except (ValueError, binascii.Error) as exc:
            raise InvalidToken(MALFORMED) from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken(MALFORMED)
        if claims.get("iss") != self.issuer:
            raise InvalidToken(WRONG_ISSUER)
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            raise InvalidToken(MALFORMED)
        if expires <= time.time():
            raise InvalidToken(EXPIRED)
        audience = claims.get("aud")
        if self.audience not in ([audience] if isinstance(audience, str) else audience or []):
            raise InvalidToken(WRONG_AUDIENCE)
        return dict(header)

    def _key_for(self, header: dict[str, Any]) -> Ed25519PublicKey:
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or (isinstance(kid, str) and kid not in self.keys):
            raise UnknownKey(UNKNOWN_KEY)
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token is invalid: it names no signing key (kid)")
        return self.keys[kid]

    def verify(self, token: str) -> Claims:
        """The token's claims; InvalidToken saying why it is refused."""
        key = self._key_for(self._check_claims_first(token))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken(EXPIRED) from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken(BAD_SIGNATURE) from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken(WRONG_AUDIENCE) from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken(WRONG_ISSUER) from exc
        except jwt.DecodeError as exc:
            raise InvalidToken(MALFORMED) from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token is invalid: {exc}") from exc
        return Claims(
            user_id=str(claims["sub"]),
            email=str(claims["email"]),
            expires=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
            token_id=str(claims["jti"]),
            issued_at=float(claims["iat"]),
        )
