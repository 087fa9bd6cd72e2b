"""Webhooks, the parts the gateway (registration) and notification (delivery) share: which
job statuses are which events, what a valid endpoint URL is, the secret, the payload,
and the delivery log kept on the job record (docs/webhooks.md).

The endpoints live in the ``webhooks`` collection beside ``jobs``: ``{_id, owner_id, url,
events, secret, disabled, disabled_reason, created}``. A job's deliveries live on its
record under ``webhook_deliveries.<message id>``, one entry per event and endpoint, so
GetJob shows them with the job and they expire with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

from mp3mesh.core.timestamps import timestamp
from mp3mesh.files.v1 import files_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2

COLLECTION = "webhooks"
# A job record's map of deliveries, keyed by message id.
DELIVERIES = "webhook_deliveries"

# A finished job's status -> the event it makes. Statuses not here send nothing.
EVENTS_BY_STATUS: dict[int, str] = {
    files_pb2.JOB_STATUS_SUCCEEDED: "job.succeeded",
    files_pb2.JOB_STATUS_FAILED: "job.failed",
    files_pb2.JOB_STATUS_CANCELLED: "job.cancelled",
}
# Every event an endpoint may ask for.
EVENT_TYPES = ("job.succeeded", "job.failed", "job.cancelled")

MAX_URL_LENGTH = 2048
# Endpoints one user may have; more is RESOURCE_EXHAUSTED.
MAX_WEBHOOKS_PER_USER = 20
SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
SECRET_BYTES = 32

PENDING = "PENDING"
DELIVERED = "DELIVERED"
FAILED = "FAILED"
DROPPED = "DROPPED"
_STATES = {
    PENDING: webhooks_pb2.WEBHOOK_DELIVERY_STATE_PENDING,
    DELIVERED: webhooks_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED,
    FAILED: webhooks_pb2.WEBHOOK_DELIVERY_STATE_FAILED,
    DROPPED: webhooks_pb2.WEBHOOK_DELIVERY_STATE_DROPPED,
}


class InvalidWebhook(ValueError):
    """A registration that cannot be accepted; the message names the field."""


def check_url(url: str) -> str:
    """The URL if it can be an endpoint: http or https, a host, bounded. Where it points
    is judged at each delivery, after resolving it (mp3mesh/notification/webhook_targets.py):
    a name may resolve elsewhere later."""
    if not url:
        raise InvalidWebhook("url is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidWebhook("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhook(f"url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhook("url must start with https:// or http://")
    if not parts.hostname:
        raise InvalidWebhook("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook("url must not carry credentials (user:password@)")
    if port == 0:
        raise InvalidWebhook("url has port 0")
    return url


def check_events(events: list[str]) -> list[str]:
    """The events asked for, each once, in the table's order; none means all."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidWebhook(
            f"events: unknown event {unknown[0][:64]!r}; expected any of {', '.join(EVENT_TYPES)}"
        )
    return [event for event in EVENT_TYPES if event in events] or list(EVENT_TYPES)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(job_id: str, event_type: str, webhook_id: str, ended: str = "") -> str:
    """The event's ``webhook-id``: derived, not drawn, so a JobFinished handled twice
    (redelivered, or announced again) makes the same id and a receiver drops the copy.
    ``ended``: when that run of the job ended (the JobFinished's ``finish_time``, which
    every copy of one announcement carries), so a job that is retried and ends again
    (cancelled, retried, cancelled) makes a new event, not a copy of the first."""
    name = f"{job_id}/{event_type}/{webhook_id}" + (f"/{ended}" if ended else "")
    digest = hashlib.sha256(name.encode()).digest()
    return "msg_" + base64.b32encode(digest[:20]).decode().lower()


def wants(webhook: dict[str, Any], event_type: str) -> bool:
    return not webhook.get("disabled") and event_type in (webhook.get("events") or EVENT_TYPES)


def payload(event_type: str, job: files_pb2.Job, at: dt.datetime) -> bytes:
    """The body, Standard Webhooks' shape: ``type``, ``timestamp``, ``data``."""
    from google.protobuf import json_format

    return json.dumps(
        {
            "type": event_type,
            "timestamp": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "data": {"job": json_format.MessageToDict(job)},
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def to_proto(doc: dict[str, Any], *, with_secret: bool = False) -> webhooks_pb2.Webhook:
    return webhooks_pb2.Webhook(
        id=str(doc["_id"]),
        url=doc["url"],
        events=doc.get("events") or list(EVENT_TYPES),
        secret=doc["secret"] if with_secret else "",
        disabled=bool(doc.get("disabled")),
        disabled_reason=doc.get("disabled_reason", ""),
        create_time=timestamp(doc.get("created")),
    )


def deliveries_to_proto(job: dict[str, Any]) -> list[webhooks_pb2.WebhookDelivery]:
    """A job record's delivery log as GetJob shows it, oldest first."""
    entries = (job.get(DELIVERIES) or {}).items()
    out = [
        webhooks_pb2.WebhookDelivery(
            webhook_id=entry.get("webhook_id", ""),
            message_id=mid,
            event_type=entry.get("event_type", ""),
            state=_STATES.get(entry.get("state", ""), 0),  # type: ignore[arg-type]
            attempts=int(entry.get("attempts", 0)),
            last_status_code=int(entry.get("last_status_code", 0)),
            last_attempt_time=timestamp(entry.get("last_attempt")),
            last_error=entry.get("last_error", ""),
        )
        for mid, entry in entries
        if isinstance(entry, dict)
    ]
    return sorted(out, key=lambda d: (d.last_attempt_time.ToNanoseconds(), d.message_id))
