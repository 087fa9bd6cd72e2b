from __future__ import annotations

from mp3mesh.core.settings import (
    SHIM_PORT,
    BrokerSettings,
    DatabaseSettings,
    RetentionSettings,
    SmtpSettings,
)


class NotificationSettings(DatabaseSettings, BrokerSettings, SmtpSettings, RetentionSettings):
    # How long a sender holds a job's mail before another may send it (longer than a send).
    mail_claim_seconds: float = 120
    # The From address; unset: SMTP_USER, else `mp3mesh <noreply@mp3mesh.local>`.
    mail_from: str | None = None
    # Used in the mail to say where to download.
    public_url: str = f"http://127.0.0.1:{SHIM_PORT}"

    @property
    def sender(self) -> str:
        return self.mail_from or self.smtp_user or "mp3mesh <noreply@mp3mesh.local>"
