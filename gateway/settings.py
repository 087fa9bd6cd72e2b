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
    watch_poll_seconds: float = 0.5
