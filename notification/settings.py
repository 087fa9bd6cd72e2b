from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator

from meshcore.settings import SHIM_PORT, DatabaseSettings


class NotificationSettings(DatabaseSettings):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    # GMAIL_ADDRESS / GMAIL_PASSWORD (an app password) work as in the seed projects.
    smtp_user: str | None = Field(None, validation_alias=AliasChoices("SMTP_USER", "GMAIL_ADDRESS"))
    smtp_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SMTP_PASSWORD", "GMAIL_PASSWORD")
    )
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    # Each SMTP connect and reply; a blackholed server costs one timeout per try.
    smtp_timeout_seconds: float = 15
    # How long a sender holds a job's mail before another may send it (longer than a send).
    mail_claim_seconds: float = 120
    mail_from: str | None = None
    # Used in the mail to say where to download.
    public_url: str = f"http://127.0.0.1:{SHIM_PORT}"

    @model_validator(mode="after")
    def _gmail_defaults(self) -> NotificationSettings:
        explicit = self.model_fields_set
        if self.smtp_user and self.smtp_user.endswith("@gmail.com") and "smtp_host" not in explicit:
            self.smtp_host, self.smtp_port, self.smtp_tls = "smtp.gmail.com", 587, "starttls"
        if (
            self.production
            and self.smtp_tls == "none"
            and self.smtp_host not in ("127.0.0.1", "localhost")
        ):
            raise ValueError(
                "SMTP_TLS must be starttls or ssl in production for a remote SMTP host"
            )
        return self

    @property
    def sender(self) -> str:
        return self.mail_from or self.smtp_user or "mp3mesh <noreply@mp3mesh.local>"
