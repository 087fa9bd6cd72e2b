"""JWT issue and check with one pinned algorithm; a token is accepted only with our
issuer, our audience, and every claim present.

Key rotation: tokens are signed with one key and name it in their ``kid`` header (a
fingerprint of the key, not the key); any of the verification keys is accepted, so a new
signing key can be rolled out while tokens signed with the previous one run out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "email", "iat", "exp", "iss", "aud", "jti"]


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why in words a user can act on."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    email: str
    expires: dt.datetime
    token_id: str  # the jti


def key_id(secret: str) -> str:
    """The ``kid`` naming a key: a fingerprint that cannot be turned back into it."""
    return hashlib.sha256(b"mp3mesh-jwt-kid:" + secret.encode()).hexdigest()[:16]


class TokenIssuer:
    def __init__(
        self,
        secret: str,
        issuer: str,
        audience: str,
        ttl: dt.timedelta,
        previous_secrets: Sequence[str] = (),
    ) -> None:
        """``secret`` signs; it and ``previous_secrets`` verify."""
        self._secret = secret
        self._kid = key_id(secret)
        self._keys = {key_id(key): key for key in (*previous_secrets, secret)}
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
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, expires

    def _key_for(self, token: str) -> str:
        """The verification key the token names; without a ``kid``, the signing key."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token is invalid: {exc}") from exc
        if kid is None:
            return self._secret
        if not isinstance(kid, str) or kid not in self._keys:
            raise InvalidToken("token was signed with a key no longer accepted; log in again")
        return self._keys[kid]

    def verify(self, token: str) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired; log in again") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token is invalid: {exc}") from exc
        return Claims(
            user_id=claims["sub"],
            email=claims["email"],
            expires=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
            token_id=str(claims["jti"]),
        )
