"""notification on its own: SMTP delivery to a real aiosmtpd server, and the ledger that
keeps redeliveries from mailing twice (real PostgreSQL)."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import pika
import psycopg2
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from devstack import free_port, temp_database
from mp3mesh.core.amqp.consumer import Requeue
from mp3mesh.core.migrations import migrate
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.handler import ClaimHeld, Notifier
from mp3mesh.notification.ledger import MIGRATIONS, Claim, SentLedger
from mp3mesh.notification.mailer import Mailer
from mp3mesh.notification.settings import NotificationSettings
from tests.unit.test_mail import SUCCEEDED


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
        self.messages.append(message)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def ledger() -> Iterator[SentLedger]:
    with temp_database("mp3mesh_notify") as url:
        migrate(url, MIGRATIONS)
        led = SentLedger(url)
        yield led
        led.close()


def test_each_job_is_mailed_once(smtp: tuple[Inbox, int], ledger: SentLedger) -> None:
    inbox, port = smtp
    settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=port)
    notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge")
    props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)
    for _ in range(3):  # redeliveries
        assert notifier.handle(SUCCEEDED.SerializeToString(), props).publish == []
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["X-Mp3mesh-Job"] == "job-1"
    assert ledger.already_sent("job-1")


def test_a_cancelled_job_makes_webhooks_and_no_mail(
    smtp: tuple[Inbox, int], ledger: SentLedger
) -> None:
    inbox, port = smtp
    settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=port)
    fanned: list[events_pb2.JobFinished] = []
    notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge",
                        fan_out=lambda event: fanned.append(event) or 1)  # fmt: skip
    cancelled = events_pb2.JobFinished()
    cancelled.CopyFrom(SUCCEEDED)
    cancelled.status, cancelled.mp3_file_id = files_pb2.JOB_STATUS_CANCELLED, ""
    props = pika.BasicProperties(type=cancelled.DESCRIPTOR.full_name)
    assert notifier.handle(cancelled.SerializeToString(), props).publish == []
    assert [e.status for e in fanned] == [files_pb2.JOB_STATUS_CANCELLED]
    assert inbox.messages == [] and not ledger.already_sent(cancelled.job_id)
    # Its retry then succeeds: that end is mailed, once.
    notifier.handle(SUCCEEDED.SerializeToString(), props)
    assert len(inbox.messages) == 1 and ledger.already_sent(SUCCEEDED.job_id)


def test_smtp_down_raises_so_the_message_is_retried(ledger: SentLedger) -> None:
    settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=free_port())
    notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge")
    props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)
    with pytest.raises(OSError):
        notifier.handle(SUCCEEDED.SerializeToString(), props)
    assert not ledger.already_sent("job-1")
    assert ledger.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED, "claim released"


class RefusingInbox(Inbox):
    """Refuses every recipient with the given reply (450 greylisting, 550 no such user)."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return self.reply


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("450 4.2.0 greylisted, try again later", False), ("550 5.1.1 no such user", True)],
)
def test_4xx_is_retried_and_5xx_ends_with_a_log_line(
    ledger: SentLedger, reply: str, permanent: bool
) -> None:
    inbox, port = RefusingInbox(reply), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=port)
        notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge")
        props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)
        if permanent:
            notifier.handle(SUCCEEDED.SerializeToString(), props)  # acked: no retry
            assert ledger.claim("job-1", "u@example.com", "x", 60) is Claim.DONE
        else:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                notifier.handle(SUCCEEDED.SerializeToString(), props)  # retried later
            assert ledger.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED
    finally:
        controller.stop()


def test_a_claimed_mail_is_not_sent_by_another_sender(
    smtp: tuple[Inbox, int], ledger: SentLedger
) -> None:
    """Two deliveries of one job at once: only the claim holder sends; the other retries
    later and then finds the mail recorded."""
    inbox, port = smtp
    settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=port)
    notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge")
    props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)
    assert ledger.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED  # the other one
    with pytest.raises(ClaimHeld):
        notifier.handle(SUCCEEDED.SerializeToString(), props)
    ledger.record("job-1")
    notifier.handle(SUCCEEDED.SerializeToString(), props)
    assert inbox.messages == []


def test_a_sender_whose_claim_expired_cannot_release_the_next_senders(
    ledger: SentLedger,
) -> None:
    """A slow sender's claim ran out and another sender claimed the mail: the slow one's
    failure must not free the mail for a third sender while the second is sending it."""
    slow, other, third = ledger, SentLedger(ledger.database_url), SentLedger(ledger.database_url)
    try:
        assert slow.claim("job-1", "u@example.com", "x", 0.2) is Claim.CLAIMED
        time.sleep(0.3)
        assert other.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED
        slow.release("job-1")
        assert third.claim("job-1", "u@example.com", "x", 60) is Claim.HELD
        other.release("job-1")
        assert third.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED
    finally:
        other.close()
        third.close()


def test_a_stop_puts_the_mail_back_at_once_whatever_the_smtp_server_does(
    ledger: SentLedger,
) -> None:
    """An SMTP server that accepts the connection and never answers: the send would wait
    SMTP_TIMEOUT_SECONDS per reply. A stop (SIGTERM) ends it now; the message goes back to
    the queue (Requeue) and the claim is free for the next sender."""
    with socket.create_server(("127.0.0.1", 0)) as hung:
        settings = NotificationSettings(
            smtp_host="127.0.0.1", smtp_port=hung.getsockname()[1], smtp_timeout_seconds=60
        )
        notifier = Notifier(ledger, Mailer(settings), settings.sender, "http://edge")
        props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)
        outcome: list[BaseException] = []

        def send() -> None:
            try:
                notifier.handle(SUCCEEDED.SerializeToString(), props)
            except BaseException as exc:
                outcome.append(exc)

        sending = threading.Thread(target=send)
        sending.start()
        connection, _ = hung.accept()  # connected; the greeting never comes
        time.sleep(0.2)
        stopped_at = time.monotonic()
        notifier.stop()
        sending.join(10)
        connection.close()
    assert time.monotonic() - stopped_at < 2
    assert [type(exc) for exc in outcome] == [Requeue]
    assert ledger.claim("job-1", "u@example.com", "x", 60) is Claim.CLAIMED, "claim released"


def test_the_ledger_forgets_mails_once_their_jobs_are_gone(
    smtp: tuple[Inbox, int], ledger: SentLedger
) -> None:
    inbox, port = smtp
    settings = NotificationSettings(smtp_host="127.0.0.1", smtp_port=port)
    props = pika.BasicProperties(type=SUCCEEDED.DESCRIPTOR.full_name)

    def notifier() -> Notifier:  # a fresh one is due its hourly pass at the first message
        return Notifier(ledger, Mailer(settings), settings.sender, "http://edge", 3600, 3600)

    notifier().handle(SUCCEEDED.SerializeToString(), props)
    assert ledger.claim("job-abandoned", "u@example.com", "x", 60) is Claim.CLAIMED
    with psycopg2.connect(ledger.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sent_notifications SET sent_at = sent_at - interval '2 hours',"
            " claimed_until = claimed_until - interval '2 hours'"
        )
    fresh = events_pb2.JobFinished()
    fresh.CopyFrom(SUCCEEDED)
    fresh.job_id = "job-new"
    notifier().handle(fresh.SerializeToString(), props)
    with psycopg2.connect(ledger.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT job_id FROM sent_notifications")
        assert [row[0] for row in cur.fetchall()] == ["job-new"]
    assert [m["X-Mp3mesh-Job"] for m in inbox.messages] == ["job-1", "job-new"]
