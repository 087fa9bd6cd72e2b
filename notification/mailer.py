"""Writing and sending the result email over SMTP (smtplib)."""

from __future__ import annotations

import smtplib
import ssl
import unicodedata
from email.message import EmailMessage
from email.utils import make_msgid

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from notification.settings import NotificationSettings


def _transient(exc: BaseException) -> bool:
    """Connection trouble and 4xx replies may pass; a 5xx reply will not."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(
        exc,
        (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError),
    )


def _printable(name: str) -> str:
    """The client's file name without control or line-separator characters (it goes into
    a mail header, where those are not allowed)."""
    return "".join(
        c
        for c in name
        if unicodedata.category(c)[0] != "C" and unicodedata.category(c) not in ("Zl", "Zp")
    )


def compose(event: events_pb2.JobFinished, sender: str, public_url: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = event.owner_email
    msg["Message-ID"] = make_msgid(idstring=event.job_id, domain="mp3mesh.local")
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
    def __init__(self, settings: NotificationSettings) -> None:
        self.s = settings

    @retry(
        retry=retry_if_exception(_transient),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_attempt(4),
        reraise=True,
    )
    def send(self, msg: EmailMessage) -> None:
        s = self.s
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=context
            )
            if s.smtp_tls == "ssl"
            else smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        )
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)
