from __future__ import annotations

from mp3mesh.core.settings import (
    SHIM_PORT,
    BrokerSettings,
    DatabaseSettings,
    MongoSettings,
    RetentionSettings,
    SmtpSettings,
)


class NotificationSettings(
    DatabaseSettings, BrokerSettings, SmtpSettings, RetentionSettings, MongoSettings
):
    # How long a sender holds a job's mail before another may send it (longer than a send).
    mail_claim_seconds: float = 120
    # The From address; unset: SMTP_USER, else `mp3mesh <noreply@mp3mesh.local>`.
    mail_from: str | None = None
    # Used in the mail to say where to download.
    public_url: str = f"http://127.0.0.1:{SHIM_PORT}"
    # Webhooks (docs/webhooks.md): each event for each endpoint is a message on this
    # queue; the endpoints and the delivery log are in MongoDB (MONGO_URL).
    webhook_queue: str = "webhook"
    # A failed delivery is tried again after each of these delays in turn (RabbitMQ
    # retry queues), then given up: 10 s to 12 h, 27.6 h in all. JSON list in the
    # environment.
    webhook_retry_delays_seconds: tuple[float, ...] = (
        10, 60, 300, 1800, 3600, 7200, 14400, 28800, 43200
    )  # fmt: skip
    # Each delivery's connect, and each read and write of it, ends within this.
    webhook_timeout_seconds: float = 10
    # Networks deliveries may go to although they are not public (CIDRs, comma-separated):
    # none in production; the local stack (stack.env) allows loopback so webhooks can be
    # tried on one machine. Loopback, private, link-local (the metadata service at
    # 169.254.169.254), shared (100.64/10) and multicast addresses are refused otherwise.
    webhook_allowed_networks: str = ""
    # Webhook deliveries in flight at once (consumers of WEBHOOK_QUEUE), so one slow
    # endpoint does not hold back the others.
    webhook_concurrency: int = 4

    @property
    def sender(self) -> str:
        return self.mail_from or self.smtp_user or "mp3mesh <noreply@mp3mesh.local>"
