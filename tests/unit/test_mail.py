"""The mail notification writes, without services."""

from __future__ import annotations

import pytest

from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.mailer import compose
from mp3mesh.notification.settings import NotificationSettings

SUCCEEDED = events_pb2.JobFinished(
    job_id="job-1",
    owner_email="u@example.com",
    status=files_pb2.JOB_STATUS_SUCCEEDED,
    mp3_file_id="mp3-1",
    filename="clip.mp4",
    duration_seconds=12.0,
    mp3_size_bytes=1000,
)


def test_mail_says_what_happened() -> None:
    ok = compose(SUCCEEDED, "mesh <a@example.com>", "http://edge")
    assert ok["Subject"] == "Your MP3 is ready: clip.mp4" and ok["To"] == "u@example.com"
    assert "mp3-1" in ok.get_content() and "http://edge/download?fid=mp3-1" in ok.get_content()
    failed = events_pb2.JobFinished(
        job_id="job-2",
        owner_email="u@example.com",
        status=files_pb2.JOB_STATUS_FAILED,
        filename="x.mp4",
        error="the video has no audio track",
    )
    bad = compose(failed, "a@example.com", "http://edge")
    assert bad["Subject"] == "We could not convert x.mp4" and "no audio track" in bad.get_content()


def test_file_names_cannot_break_the_mail_headers() -> None:
    event = events_pb2.JobFinished(
        job_id="j",
        owner_email="u@example.com",
        status=files_pb2.JOB_STATUS_SUCCEEDED,
        filename="evil\u2028Bcc: x@example.com\r\n.mp4",
    )
    msg = compose(event, "a@example.com", "http://edge")
    assert msg["Subject"] == "Your MP3 is ready: evilBcc: x@example.com.mp4"
    assert msg["Bcc"] is None


def test_gmail_variables_from_the_seed_projects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMAIL_ADDRESS", "me@gmail.com")
    monkeypatch.setenv("GMAIL_PASSWORD", "app-password")
    s = NotificationSettings()
    assert (s.smtp_host, s.smtp_port, s.smtp_tls, s.smtp_user) == (
        "smtp.gmail.com",
        587,
        "starttls",
        "me@gmail.com",
    )
    assert s.smtp_password is not None and s.smtp_password.get_secret_value() == "app-password"
    assert "app-password" not in repr(s)


def test_a_resent_mail_keeps_its_message_id() -> None:
    first = compose(SUCCEEDED, "a@example.com", "http://edge")
    again = compose(SUCCEEDED, "a@example.com", "http://edge")
    assert first["Message-ID"] == again["Message-ID"] == "<job-job-1@mp3mesh.local>"
