"""JWT issue and check with one pinned algorithm; a token is accepted only with our
issuer, our audience, and every claim present."""

from __future__ import annotations

import datetime as dt
import uuid
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


class TokenIssuer:
    def __init__(self, secret: str, issuer: str, audience: str, ttl: dt.timedelta) -> None:
        self._secret = secret
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
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
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
        )
