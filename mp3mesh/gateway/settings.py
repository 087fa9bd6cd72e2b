from __future__ import annotations

from mp3mesh.core.settings import (
    GATEWAY_ADDRESS,
    AuthVerifierSettings,
    GrpcServerSettings,
    MongoSettings,
    RetentionSettings,
    UploadLimitSettings,
)


class GatewaySettings(
    AuthVerifierSettings,
    UploadLimitSettings,
    GrpcServerSettings,
    MongoSettings,
    RetentionSettings,
):
    # Where the gateway's gRPC server listens (host:port).
    gateway_listen: str = GATEWAY_ADDRESS
    # How long an upload waits for the broker's confirm of its announcement
    # before leaving it to the outbox relay (the upload succeeds either way).
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
