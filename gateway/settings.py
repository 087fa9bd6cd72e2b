from __future__ import annotations

from meshcore.settings import (
    GATEWAY_ADDRESS,
    AuthClientSettings,
    BrokerSettings,
    GrpcServerSettings,
    MongoSettings,
    RetentionSettings,
    UploadLimitSettings,
)


class GatewaySettings(
    AuthClientSettings,
    UploadLimitSettings,
    GrpcServerSettings,
    MongoSettings,
    BrokerSettings,
    RetentionSettings,
):
    gateway_listen: str = GATEWAY_ADDRESS
    auth_timeout_seconds: float = 2.0
    # How long a token auth vouched for is trusted without asking again (never past its
    # expiry); 0: ask on every call. A logout or a deleted account takes effect within
    # this. 30 s: most calls of a session skip the round trip (the CLI and the page make
    # several per minute), while a revoked token is refused half a minute later at most.
    token_cache_seconds: float = 30.0
    token_cache_size: int = 10_000
    publish_timeout_seconds: float = 10.0
    # How often the outbox relay publishes pending announcements, and housekeeping sweeps
    # (leases, retention).
    relay_interval_seconds: float = 5.0
    # A job left QUEUED this long with no announcement pending and no converter taking it
    # (its message was lost) is announced again; longer than a backlog should last.
    queued_job_patience_seconds: float = 3600.0
    # On shutdown, how long removals of failed uploads still retrying may take.
    cleanup_grace_seconds: float = 5.0
    # An upload whose gateway stopped heartbeating for this long (it died, or stalls) is
    # removed by any gateway's housekeeping; a live upload beats every fifth of it.
    unfinished_upload_age_seconds: float = 300.0
    # WatchJob is fed by the converter's job events; with none for this long, it reads the
    # job's record (a safety poll: events are best effort).
    watch_poll_seconds: float = 5.0
    # Per user, in one gateway: uploads and WatchJob streams open at once; more are
    # RESOURCE_EXHAUSTED saying so.
    max_uploads_per_user: int = 8
    max_watches_per_user: int = 16
    # An upload that sends no message for this long, or takes longer than this in all
    # (2 GiB at 1 Mbit/s takes 4.8 h), is DEADLINE_EXCEEDED and removed.
    upload_idle_seconds: float = 120.0
    upload_total_seconds: float = 6 * 3600
    # Messages of one upload that carry no bytes (the first, with the metadata, counts):
    # past this, RESOURCE_EXHAUSTED; a stream of empty messages is work for nothing.
    max_empty_upload_messages: int = 64
