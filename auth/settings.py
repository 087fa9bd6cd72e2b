from __future__ import annotations

from pydantic import SecretStr, model_validator

from meshcore.settings import AUTH_ADDRESS, DatabaseSettings


class AuthSettings(DatabaseSettings):
    auth_listen: str = AUTH_ADDRESS
    # HS256 key. Unset in development: a random key per process (tokens die with it).
    # Required in production, at least 32 bytes.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "mp3mesh-auth"
    jwt_audience: str = "mp3mesh"
    token_ttl_seconds: int = 3600

    @model_validator(mode="after")
    def _secret_in_production(self) -> AuthSettings:
        if self.production:
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError("JWT_SECRET must be set to at least 32 bytes in production")
        return self
