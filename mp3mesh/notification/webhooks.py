"""Webhooks, the notification service's second channel beside mail (docs/webhooks.md).

Why here: a webhook is what the mail is, for programs: the news that a job ended, told
to its owner. The notification service already consumes that news (JobFinished on the
`mp3` queue) and is the one place that talks to the outside world; putting webhooks
beside mail keeps the gateway (which serves users) and the converter (which holds jobs)
free of slow, untrusted HTTP endpoints.

Two steps, so one slow or dead endpoint holds back neither the mail nor other
endpoints:

1. :class:`WebhookFanOut`, run by the mail handler for each JobFinished before it mails:
   one :class:`WebhookEventDue` per endpoint of the owner that wants the event, published
   to the `webhook` queue, and a PENDING entry in the job's delivery log. The message id
   (the `webhook-id` header) is derived from job, event, endpoint and the run's end time,
   so handling the same JobFinished again publishes nothing new.
2. :class:`WebhookDeliverer`, the `webhook` queue's handler: resolve the endpoint's host
   and refuse private targets (mp3mesh/notification/webhook_targets.py), sign with the
   `standardwebhooks` library (fresh timestamp and signature on each try, same id and
   body), POST, and log the try on the job. A failed try raises, and the consumer sends
   the message through the queue's retry queues (WEBHOOK_RETRY_DELAYS_SECONDS, over a
   day by default) before giving up; 410 Gone disables the endpoint.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import pika
import structlog
from bson import ObjectId
from bson.errors import InvalidId
from prometheus_client import Counter
from pymongo.database import Database
from standardwebhooks import Webhook

from mp3mesh.core import tracing, webhooks
from mp3mesh.core.amqp.consumer import Outcome, Requeue, decode, retries_of
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.events.v1 import events_pb2, webhook_events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.webhook_targets import (
    InterruptibleBackend,
    Network,
    TargetRefused,
    http_client,
    post,
    resolve,
)

log = structlog.get_logger()

# delivered; retried (a try failed, another follows); disabled (410); refused (target not
# allowed); dropped (endpoint gone or disabled); duplicate (already delivered).
WEBHOOKS = Counter(
    "mp3mesh_webhook_deliveries_total",
    "Webhook delivery tries by outcome: delivered, retried, disabled, refused, dropped,"
    " duplicate, failed.",
    ("outcome",),
)


class DeliveryFailed(Exception):
    """This try failed in a way a later try may not: the consumer retries it later."""


def _oid(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def _now() -> dt.datetime:
    t = dt.datetime.now(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _job_of(event: events_pb2.JobFinished) -> files_pb2.Job:
    """The job as the payload shows it, from the announcement alone (the record may be
    gone by the time a retry runs; the body must not change between tries anyway)."""
    return files_pb2.Job(
        id=event.job_id,
        video_file_id=event.job_id,
        owner_id=event.owner_id,
        status=event.status,
        mp3_file_id=event.mp3_file_id,
        error=event.error,
        filename=event.filename,
        duration_seconds=event.duration_seconds,
        mp3_size_bytes=event.mp3_size_bytes,
        update_time=event.finish_time,
    )


class DeliveryLog:
    """The delivery log on the job record: ``webhook_deliveries.<message id>``."""

    def __init__(self, db: Database[Any]) -> None:
        self.jobs = db["jobs"]

    def entry(self, job_id: str, mid: str) -> dict[str, Any] | None:
        oid = _oid(job_id)
        doc = self.jobs.find_one({"_id": oid}, {webhooks.DELIVERIES: 1}) if oid else None
        entry = ((doc or {}).get(webhooks.DELIVERIES) or {}).get(mid)
        return entry if isinstance(entry, dict) else None

    def open(self, due: webhook_events_pb2.WebhookEventDue) -> None:
        """A PENDING entry, unless the log has one already."""
        oid = _oid(due.job_id)
        key = f"{webhooks.DELIVERIES}.{due.message_id}"
        entry = {
            "webhook_id": due.webhook_id,
            "event_type": due.event_type,
            "state": webhooks.PENDING,
            "attempts": 0,
            "last_status_code": 0,
            "last_error": "",
            "published": False,
        }
        self.jobs.update_one({"_id": oid, key: {"$exists": False}}, {"$set": {key: entry}})

    def update(self, job_id: str, mid: str, **fields: Any) -> None:
        oid = _oid(job_id)
        if oid is None:
            return
        key = f"{webhooks.DELIVERIES}.{mid}"
        self.jobs.update_one(
            {"_id": oid, key: {"$exists": True}},
            {"$set": {f"{key}.{name}": value for name, value in fields.items()}},
        )


class WebhookFanOut:
    def __init__(
        self, db: Database[Any], publisher: ThreadedPublisher, queue: str, timeout: float = 10
    ) -> None:
        self.endpoints = db[webhooks.COLLECTION]
        self.log = DeliveryLog(db)
        self.publisher = publisher
        self.queue = queue
        self.timeout = timeout

    def fan_out(self, event: events_pb2.JobFinished) -> int:
        """Queue the event for each endpoint of the owner that wants it; how many were
        queued now. Raises if one could not be (the JobFinished is tried again)."""
        event_type = webhooks.EVENTS_BY_STATUS.get(event.status)
        if event_type is None or not event.owner_id:
            return 0
        queued = 0
        finished = event.finish_time.ToDatetime(dt.UTC) if event.HasField("finish_time") else _now()
        body = webhooks.payload(event_type, _job_of(event), finished)
        ended = str(event.finish_time.ToNanoseconds()) if event.HasField("finish_time") else ""
        for endpoint in self.endpoints.find({"owner_id": event.owner_id}).sort("_id", 1):
            if not webhooks.wants(endpoint, event_type):
                continue
            webhook_id = str(endpoint["_id"])
            mid = webhooks.message_id(event.job_id, event_type, webhook_id, ended)
            entry = self.log.entry(event.job_id, mid)
            if entry is not None and entry.get("published", True):
                continue  # queued before: this JobFinished came again
            due = webhook_events_pb2.WebhookEventDue(
                message_id=mid,
                webhook_id=webhook_id,
                owner_id=event.owner_id,
                job_id=event.job_id,
                event_type=event_type,
                payload=body,
                event_time=event.finish_time,
            )
            self.log.open(due)
            self.publisher.publish(self.queue, due, mid).result(self.timeout)
            self.log.update(event.job_id, mid, published=True)
            queued += 1
            log.info("webhook queued", job_id=event.job_id, webhook_id=webhook_id, message_id=mid)
        return queued


class WebhookDeliverer:
    """The `webhook` queue's handler: one try at one event for one endpoint."""

    def __init__(
        self,
        db: Database[Any],
        allowed_networks: Sequence[Network],
        timeout: float,
        retry_delays: Sequence[float],
    ) -> None:
        self.endpoints = db[webhooks.COLLECTION]
        self.log = DeliveryLog(db)
        self.allowed = list(allowed_networks)
        self._backend = InterruptibleBackend()
        self.client = http_client(timeout, self._backend)
        self.tries = len(retry_delays) + 1
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Signal-safe: no new try starts, and the try in flight is cut off now; its
        message goes back to the queue, not counted as a try."""
        self._stopping.set()
        self._backend.interrupt()

    def close(self) -> None:
        self.client.close()

    def handle(self, body: bytes, properties: pika.BasicProperties) -> Outcome:
        due = decode(body, properties, webhook_events_pb2.WebhookEventDue)
        tracing.set_job(due.job_id)
        if self._stopping.is_set():
            raise Requeue("the notification service is stopping")
        attempt = retries_of(properties) + 1
        where = {"job_id": due.job_id, "webhook_id": due.webhook_id, "message_id": due.message_id}
        oid = _oid(due.webhook_id)
        endpoint = self.endpoints.find_one({"_id": oid}) if oid else None
        if endpoint is None or endpoint.get("owner_id") != due.owner_id:
            self.log.update(due.job_id, due.message_id, state=webhooks.DROPPED,
                            last_error="the webhook was deleted")  # fmt: skip
            WEBHOOKS.labels("dropped").inc()
            return Outcome()
        if endpoint.get("disabled"):
            reason = f"the webhook is disabled: {endpoint.get('disabled_reason', '')}"
            self.log.update(due.job_id, due.message_id, state=webhooks.DROPPED, last_error=reason)
            WEBHOOKS.labels("dropped").inc()
            return Outcome()
        entry = self.log.entry(due.job_id, due.message_id)
        if entry is not None and entry.get("state") == webhooks.DELIVERED:
            WEBHOOKS.labels("duplicate").inc()
            return Outcome()
        tried = {"attempts": attempt, "last_attempt": _now()}
        try:
            target = resolve(endpoint["url"], self.allowed)
        except TargetRefused as exc:
            log.warning("webhook target refused", reason=str(exc), **where)
            self.log.update(due.job_id, due.message_id, state=webhooks.FAILED,
                            last_status_code=0, last_error=str(exc), **tried)  # fmt: skip
            WEBHOOKS.labels("refused").inc()
            return Outcome()
        except (OSError, ValueError) as exc:
            return self._failed(due, tried, 0, f"cannot resolve the host: {exc}")
        webhook = Webhook(endpoint["secret"])
        sent_at = dt.datetime.now(dt.UTC)
        headers = {
            "webhook-id": due.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": webhook.sign(due.message_id, sent_at, due.payload),
            "content-type": "application/json",
        }
        try:
            with tracing.tracer.start_as_current_span("webhook post"):
                status = post(self.client, target, due.payload, headers)
        except httpx.HTTPError as exc:
            if self._stopping.is_set():
                raise Requeue("the notification service is stopping") from exc
            return self._failed(due, tried, 0, f"no answer: {type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            self.log.update(due.job_id, due.message_id, state=webhooks.DELIVERED,
                            last_status_code=status, last_error="", **tried)  # fmt: skip
            WEBHOOKS.labels("delivered").inc()
            log.info("webhook delivered", status=status, attempt=attempt, **where)
            return Outcome()
        if status == 410:
            reason = f"the endpoint answered 410 Gone on {_now().isoformat()}"
            self.endpoints.update_one(
                {"_id": endpoint["_id"]}, {"$set": {"disabled": True, "disabled_reason": reason}}
            )
            self.log.update(due.job_id, due.message_id, state=webhooks.DROPPED,
                            last_status_code=status, last_error=reason, **tried)  # fmt: skip
            WEBHOOKS.labels("disabled").inc()
            log.warning("webhook disabled: the endpoint answered 410", **where)
            return Outcome()
        return self._failed(due, tried, status, f"the endpoint answered {status}")

    def _failed(
        self,
        due: webhook_events_pb2.WebhookEventDue,
        tried: dict[str, Any],
        status: int,
        reason: str,
    ) -> Outcome:
        self.log.update(due.job_id, due.message_id, state=webhooks.PENDING,
                        last_status_code=status, last_error=reason, **tried)  # fmt: skip
        WEBHOOKS.labels("retried").inc()
        raise DeliveryFailed(f"try {tried['attempts']} of {self.tries}: {reason}")

    def give_up(self, body: bytes, properties: pika.BasicProperties, reason: str) -> Outcome:
        """The tries ran out: FAILED on the job; the message goes to the dead-letter queue."""
        due = decode(body, properties, webhook_events_pb2.WebhookEventDue)
        self.log.update(due.job_id, due.message_id, state=webhooks.FAILED,
                        last_error=f"gave up after {self.tries} tries: {reason}")  # fmt: skip
        WEBHOOKS.labels("failed").inc()
        log.error("webhook delivery given up", job_id=due.job_id, message_id=due.message_id)
        return Outcome()
