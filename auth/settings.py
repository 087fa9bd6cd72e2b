from __future__ import annotations

import limits
from pydantic import SecretStr, field_validator, model_validator

from meshcore.settings import AUTH_ADDRESS, DatabaseSettings, GrpcServerSettings


class AuthSettings(DatabaseSettings, GrpcServerSettings):
    auth_listen: str = AUTH_ADDRESS
    # HS256 key. Unset in development: a random key per process (tokens die with it).
    # Required in production, at least 32 bytes.
    jwt_secret: SecretStr | None = None
    # Keys signed with before JWT_SECRET, still accepted (JSON list): to rotate, move the
    # old key here, set a new JWT_SECRET, and drop the old one after TOKEN_TTL_SECONDS.
    jwt_previous_secrets: tuple[SecretStr, ...] = ()
    jwt_issuer: str = "mp3mesh-auth"
    jwt_audience: str = "mp3mesh"
    token_ttl_seconds: int = 3600
    # Failed logins allowed per account and per client address within a moving window
    # (`limits` notation: "5/minute", "100 per hour"); past either, Login answers
    # RESOURCE_EXHAUSTED saying when to try again. A good password clears the account's.
    login_failures_per_email: str = "5/minute"
    login_failures_per_address: str = "20/minute"
    # argon2 hashes (64 MiB each) running at once, and calls queued behind them; past
    # both, Login and Register answer RESOURCE_EXHAUSTED at once.
    hash_concurrency: int = 2
    hash_queue: int = 16

    @field_validator("login_failures_per_email", "login_failures_per_address")
    @classmethod
    def _a_rate_limit(cls, value: str) -> str:
        limits.parse(value)  # ValueError naming the bad string
        return value

    @model_validator(mode="after")
    def _secret_in_production(self) -> AuthSettings:
        if self.production:
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError("JWT_SECRET must be set to at least 32 bytes in production")
            if any(len(k.get_secret_value().encode()) < 32 for k in self.jwt_previous_secrets):
                raise ValueError("each of JWT_PREVIOUS_SECRETS must be at least 32 bytes")
        return self
