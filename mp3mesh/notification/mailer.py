"""Writing and sending the result email over SMTP (smtplib)."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import unicodedata
from email.message import EmailMessage

from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.settings import NotificationSettings


class MailRefused(Exception):
    """The SMTP server refused the mail for good (a 5xx reply): do not try again."""


def _permanent_reply(exc: smtplib.SMTPException) -> str | None:
    """The server's 5xx reply, if ``exc`` carries one; 4xx (greylisting, a full mailbox,
    a busy server), timeouts and connection errors are transient."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        if replies and all(code >= 500 for code, _ in replies):
            return "; ".join(f"{code} {text!r}" for code, text in replies)
        return None
    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500:
        return f"{exc.smtp_code} {exc.smtp_error!r}"
    return None


def _printable(name: str) -> str:
    """The client's file name without control or line-separator characters (it goes into
    a mail header, where those are not allowed)."""
    return "".join(
        c
        for c in name
        if unicodedata.category(c)[0] != "C" and unicodedata.category(c) not in ("Zl", "Zp")
    )


def message_id(job_id: str) -> str:
    safe = "".join(c for c in job_id if c.isascii() and (c.isalnum() or c in "-_.")) or "job"
    return f"<job-{safe}@mp3mesh.local>"


def compose(event: events_pb2.JobFinished, sender: str, public_url: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = event.owner_email
    # Stable: a resend of the same job's mail carries the same id, so clients show one.
    msg["Message-ID"] = message_id(event.job_id)
    msg["X-Mp3mesh-Job"] = event.job_id
    name = _printable(event.filename) or "your video"
    if event.status == files_pb2.JOB_STATUS_SUCCEEDED:
        msg["Subject"] = f"Your MP3 is ready: {name}"
        msg["X-Mp3mesh-Mp3-File"] = event.mp3_file_id
        msg.set_content(
            f"The audio of {name} is ready ({event.duration_seconds:.1f} s, "
            f"{event.mp3_size_bytes} bytes).\n\n"
            f"MP3 file id: {event.mp3_file_id}\n"
            f"Job id: {event.job_id}\n\n"
            "Download it with:\n"
            f'  curl "{public_url}/download?fid={event.mp3_file_id}" '
            '-H "Authorization: Bearer $TOKEN" -o audio.mp3\n'
        )
    else:
        msg["Subject"] = f"We could not convert {name}"
        msg.set_content(
            f"The conversion of {name} failed: {event.error}\n\nJob id: {event.job_id}\n"
        )
    return msg


class Mailer:
    """Sends from one thread at a time; :meth:`stop` may come from any other (a signal)."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.s = settings
        self._stopping = threading.Event()
        # The connection of the send in progress, for stop() to cut.
        self._current: smtplib.SMTP | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Signal-safe: the send in progress fails now instead of waiting out an SMTP
        server that does not answer (up to SMTP_TIMEOUT_SECONDS per reply), and no new
        one starts."""
        self._stopping.set()
        if (smtp := self._current) is not None and smtp.sock is not None:
            with contextlib.suppress(OSError):
                smtp.sock.shutdown(socket.SHUT_RDWR)

    def send(self, msg: EmailMessage) -> None:
        """One try (retries go through the broker's retry queues); :class:`MailRefused`
        for a permanent refusal, any other exception for a transient failure."""
        try:
            self._send(msg)
        except smtplib.SMTPException as exc:
            if (reply := _permanent_reply(exc)) is not None:
                raise MailRefused(reply) from exc
            raise

    def _send(self, msg: EmailMessage) -> None:
        s = self.s
        context = ssl.create_default_context()
        # Made unconnected, so that stop() can reach its socket while it waits for the
        # server's greeting.
        smtp = (
            smtplib.SMTP_SSL(timeout=s.smtp_timeout_seconds, context=context)
            if s.smtp_tls == "ssl"
            else smtplib.SMTP(timeout=s.smtp_timeout_seconds)
        )
        self._current = smtp
        try:
            if self.stopping:
                raise ConnectionAbortedError("the notification service is stopping")
            smtp.connect(s.smtp_host, s.smtp_port)
            self._converse(smtp, msg, context)
        finally:
            self._current = None

    def _converse(self, smtp: smtplib.SMTP, msg: EmailMessage, context: ssl.SSLContext) -> None:
        s = self.s
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)
