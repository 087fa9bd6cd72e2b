from __future__ import annotations

from pathlib import Path

import limits
from pydantic import Field, field_validator, model_validator

from mp3mesh.core import defaults
from mp3mesh.core.settings import (
    AUTH_ADDRESS,
    DatabaseSettings,
    GrpcServerSettings,
    TokenCheckSettings,
)


class AuthSettings(DatabaseSettings, TokenCheckSettings, GrpcServerSettings):
    # Where auth's gRPC server listens (host:port).
    auth_listen: str = AUTH_ADDRESS
    # PEM file of the Ed25519 private key tokens are signed with (in Kubernetes a Secret
    # mounted in auth's pod only). Unset in development: a key made once under
    # MP3MESH_VAR/auth; production refuses to start without one.
    jwt_signing_key_file: str | None = None
    # PEM files of keys signed with before (either half; only the public one is kept),
    # still published and accepted (JSON list): to rotate, list the old key here, point
    # JWT_SIGNING_KEY_FILE at a new one, and drop the old one after TOKEN_TTL_SECONDS.
    jwt_previous_key_files: tuple[str, ...] = ()
    # How long a token is valid after login; then the user logs in again.
    token_ttl_seconds: int = 3600
    # Failed logins (counted from the moment an attempt is admitted, before its hash)
    # within moving windows (`limits` notation: "5/minute", "100 per hour"), see
    # docs/security.md. Per account from one client address, and per address over all
    # accounts: past either, RESOURCE_EXHAUSTED saying when to try again; a good password
    # clears its account's count from its address. Per account over all addresses: past
    # it, addresses the account has not logged in from lately get one attempt per
    # LOGIN_ACCOUNT_SLOWDOWN_SECONDS between them; the account's own addresses are not
    # slowed (so guessing cannot lock its owner out).
    login_failures_per_email: str = "5/minute"
    login_failures_per_address: str = "20/minute"
    login_failures_per_account: str = "20/hour"
    login_account_slowdown_seconds: int = Field(10, gt=0)
    # Login calls per client address and minute, and Register calls per client address
    # and hour, whatever edge or URL they came through; past either RESOURCE_EXHAUSTED
    # (HTTP 429) with retry-after, before anything is looked up or hashed.
    login_requests_per_minute: int = Field(defaults.LOGIN_REQUESTS_PER_MINUTE, gt=0)
    registrations_per_address_per_hour: int = Field(20, gt=0)
    # Login's argon2 hashes (64 MiB each) running at once, and calls queued behind them;
    # past both, Login answers RESOURCE_EXHAUSTED at once.
    hash_concurrency: int = 2
    hash_queue: int = 16
    # Register's, in a pool of their own: registrations never take Login's hash slots.
    register_hash_concurrency: int = 1
    register_hash_queue: int = 4

    @field_validator(
        "login_failures_per_email", "login_failures_per_address", "login_failures_per_account"
    )
    @classmethod
    def _a_rate_limit(cls, value: str) -> str:
        limits.parse(value)  # ValueError naming the bad string
        return value

    @property
    def development_key_file(self) -> Path:
        return Path(self.mp3mesh_var) / "auth" / "jwt-signing-key.pem"

    @model_validator(mode="after")
    def _signing_key_in_production(self) -> AuthSettings:
        if self.production and not self.jwt_signing_key_file:
            raise ValueError(
                "JWT_SIGNING_KEY_FILE must name the Ed25519 private key (PEM) in production"
            )
        return self
