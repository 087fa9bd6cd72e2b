"""Handles one JobFinished: mail the owner once, then record it."""

from __future__ import annotations

import pika
import structlog

from meshcore.amqp import Outcome, decode
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from notification.ledger import SentLedger
from notification.mailer import Mailer, compose

log = structlog.get_logger()


class Notifier:
    def __init__(self, ledger: SentLedger, mailer: Mailer, sender: str, public_url: str) -> None:
        self.ledger = ledger
        self.mailer = mailer
        self.sender = sender
        self.public_url = public_url

    def handle(self, body: bytes, properties: pika.BasicProperties) -> Outcome:
        event = decode(body, properties, events_pb2.JobFinished)
        if self.ledger.already_sent(event.job_id):
            log.info("already notified; skipping", job_id=event.job_id)
            return Outcome()
        if not event.owner_email:
            log.warning("job has no owner email; nothing to send", job_id=event.job_id)
            return Outcome()
        self.mailer.send(compose(event, self.sender, self.public_url))
        status = files_pb2.JobStatus.Name(event.status)
        self.ledger.record(event.job_id, event.owner_email, status)
        log.info("notified", job_id=event.job_id, status=status)
        return Outcome()
