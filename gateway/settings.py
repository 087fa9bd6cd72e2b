from __future__ import annotations

from meshcore.settings import GATEWAY_ADDRESS, AuthClientSettings, UploadLimitSettings


class GatewaySettings(AuthClientSettings, UploadLimitSettings):
    gateway_listen: str = GATEWAY_ADDRESS
    auth_timeout_seconds: float = 2.0
    publish_timeout_seconds: float = 10.0
    # How often the outbox relay publishes pending announcements and sweeps expired leases.
    relay_interval_seconds: float = 5.0
    # On shutdown, how long removals of failed uploads still retrying may take.
    cleanup_grace_seconds: float = 5.0
    # At startup, uploads begun longer ago than this and never finished (their gateway
    # died) are removed; longer than any upload takes.
    unfinished_upload_age_seconds: float = 6 * 3600
    watch_poll_seconds: float = 0.5
