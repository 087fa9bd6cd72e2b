"""Handles one JobFinished: queue its webhooks, then claim the job's mail, send it, record
it (see ledger.py); a cancelled job's JobFinished is not mailed."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pika
import structlog
from prometheus_client import Counter

from mp3mesh.core import tracing
from mp3mesh.core.amqp.consumer import Outcome, Requeue, decode
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.ledger import Claim, SentLedger
from mp3mesh.notification.mailer import Mailer, MailRefused, compose

log = structlog.get_logger()

# sent; refused (5xx: for good); failed (to be retried); duplicate (already sent).
MAILS = Counter(
    "mp3mesh_mails_total", "Mails by outcome: sent, refused, failed, duplicate.", ("outcome",)
)


# The ends a mail tells of; a cancelled job makes webhooks only (its owner cancelled it).
MAILED = (files_pb2.JOB_STATUS_SUCCEEDED, files_pb2.JOB_STATUS_FAILED)


class ClaimHeld(Exception):
    """Another sender is mailing this job right now; look again later."""


class Notifier:
    def __init__(
        self,
        ledger: SentLedger,
        mailer: Mailer,
        sender: str,
        public_url: str,
        claim_lease: float = 120.0,
        ledger_retention: float = 2 * 24 * 3600,
        fan_out: Callable[[events_pb2.JobFinished], int] | None = None,
    ) -> None:
        """``fan_out``: queues the event for the owner's webhooks
        (mp3mesh/notification/webhooks.py), first, so a mail that keeps failing does not
        hold them back."""
        self.ledger = ledger
        self.mailer = mailer
        self.sender = sender
        self.public_url = public_url
        self.claim_lease = claim_lease
        self.ledger_retention = ledger_retention
        self._forgotten_at = -math.inf
        self.fan_out = fan_out

    def stop(self) -> None:
        """Signal-safe: the mail in hand goes back to the queue at once (its claim
        released), within the grace period whatever the SMTP server does."""
        self.mailer.stop()

    def forget_old_mails(self) -> None:
        """Keep the ledger as long as the job records (at most hourly, between messages)."""
        if time.monotonic() - self._forgotten_at < 3600:
            return
        forgotten = self.ledger.forget_older_than(self.ledger_retention)
        self._forgotten_at = time.monotonic()
        if forgotten:
            log.info("forgot old mails", rows=forgotten)

    def handle(self, body: bytes, properties: pika.BasicProperties) -> Outcome:
        self.forget_old_mails()
        event = decode(body, properties, events_pb2.JobFinished)
        tracing.set_job(event.job_id)
        if self.fan_out is not None:
            self.fan_out(event)
        if event.status not in MAILED:
            log.info("not mailed: the job was cancelled by its owner", job_id=event.job_id,
                     status=files_pb2.JobStatus.Name(event.status))  # fmt: skip
            return Outcome()
        if not event.owner_email:
            log.warning("job has no owner email; nothing to send", job_id=event.job_id)
            return Outcome()
        status = files_pb2.JobStatus.Name(event.status)
        claim = self.ledger.claim(event.job_id, event.owner_email, status, self.claim_lease)
        if claim is Claim.DONE:
            log.info("already notified; skipping", job_id=event.job_id)
            MAILS.labels("duplicate").inc()
            return Outcome()
        if claim is Claim.HELD:
            raise ClaimHeld(f"job {event.job_id} is being mailed by another sender")
        try:
            with tracing.tracer.start_as_current_span("smtp send"):
                self.mailer.send(compose(event, self.sender, self.public_url))
        except MailRefused as exc:
            # Permanent (5xx): trying again cannot help; the log says why.
            log.error("mail refused for good", job_id=event.job_id, reply=str(exc))
            self.ledger.record(event.job_id, refused=str(exc))
            MAILS.labels("refused").inc()
            return Outcome()
        except BaseException as exc:
            MAILS.labels("failed").inc()
            self.ledger.release(event.job_id)  # transient: the retry claims it again
            if self.mailer.stopping:
                raise Requeue("the notification service is stopping") from exc
            raise
        self.ledger.record(event.job_id)
        MAILS.labels("sent").inc()
        log.info("notified", job_id=event.job_id, status=status)
        return Outcome()

    def give_up(self, body: bytes, properties: pika.BasicProperties, reason: str) -> Outcome:
        """The mail goes to the dead-letter queue; `replay` sends it again later."""
        log.error("mail could not be sent; dead-lettered", reason=reason)
        return Outcome()
