"""Webhooks without services: the SSRF guard's judgement of addresses, URL and event
checks at registration, message ids, and signatures the standardwebhooks library accepts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import threading
import time

import httpx
import pytest
from standardwebhooks import Webhook

from mp3mesh.core import webhooks
from mp3mesh.files.v1 import files_pb2
from mp3mesh.notification.webhook_targets import (
    InterruptibleBackend,
    TargetRefused,
    check_address,
    http_client,
    parse_networks,
    post,
    resolve,
)

LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the cloud metadata service
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",  # noqa: S104 (an address judged, not bound)
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS's IPv6 metadata service
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:a00:1::",  # 6to4 around 10.0.0.1
        "ff02::1",
    ],
)
def test_private_addresses_are_refused(address: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        check_address(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass(address: str) -> None:
    check_address(ipaddress.ip_address(address), [])


def test_allowed_networks_open_loopback_only() -> None:
    check_address(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    check_address(ipaddress.ip_address("::1"), LOOPBACK)
    with pytest.raises(TargetRefused):
        check_address(ipaddress.ip_address("10.0.0.1"), LOOPBACK)
    with pytest.raises(TargetRefused):
        check_address(ipaddress.ip_address("169.254.169.254"), LOOPBACK)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5:8080/hook", "http://[::1]:9/x",
     "http://localhost:8080/hook"],
)  # fmt: skip
def test_resolve_refuses_private_targets(url: str) -> None:
    with pytest.raises(TargetRefused):
        resolve(url, [])


def test_resolve_connects_to_the_resolved_address_with_the_urls_host() -> None:
    target = resolve("http://localhost:8443/hook?x=1", LOOPBACK)
    assert target.address.is_loopback
    assert target.url.host == str(target.address)
    assert target.url.port == 8443 and target.url.path == "/hook"
    assert target.host_header == "localhost:8443"
    assert target.server_name == "localhost"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "url is required"),
        ("ftp://example.com/x", "url must start with https:// or http://"),
        ("https:///nohost", "url must name a host"),
        ("https://user:pw@example.com/", "url must not carry credentials"),
        ("https://example.com/" + "a" * 2100, "url is longer than 2048 characters"),
        ("https://exa mple.com/", "url must not contain spaces"),
        ("https://example.com:99999/", "url is not a valid URL"),
    ],
)
def test_urls_are_checked_at_registration(url: str, message: str) -> None:
    with pytest.raises(webhooks.InvalidWebhook, match=message):
        webhooks.check_url(url)


def test_events_are_checked_and_default_to_all() -> None:
    assert webhooks.check_events([]) == list(webhooks.EVENT_TYPES)
    assert webhooks.check_events(["job.failed", "job.succeeded", "job.failed"]) == [
        "job.succeeded",
        "job.failed",
    ]
    with pytest.raises(webhooks.InvalidWebhook, match=r"events: unknown event 'job\.started'"):
        webhooks.check_events(["job.started"])


def test_every_final_status_has_one_event() -> None:
    assert set(webhooks.EVENTS_BY_STATUS.values()) <= set(webhooks.EVENT_TYPES)
    assert webhooks.EVENTS_BY_STATUS[files_pb2.JOB_STATUS_SUCCEEDED] == "job.succeeded"


def test_message_ids_are_stable_per_event_and_endpoint() -> None:
    a = webhooks.message_id("job1", "job.succeeded", "hook1")
    assert a == webhooks.message_id("job1", "job.succeeded", "hook1")
    assert a != webhooks.message_id("job1", "job.succeeded", "hook2")
    assert a != webhooks.message_id("job1", "job.failed", "hook1")
    assert a.startswith("msg_")
    # A retried job ending again is a new event; the same end announced again is not.
    first = webhooks.message_id("job1", "job.cancelled", "hook1", "1764928331420000000")
    assert first == webhooks.message_id("job1", "job.cancelled", "hook1", "1764928331420000000")
    assert first != webhooks.message_id("job1", "job.cancelled", "hook1", "1764928399000000000")


def test_secret_signs_what_standardwebhooks_verifies() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    body = webhooks.payload(
        "job.succeeded", files_pb2.Job(id="abc", status=files_pb2.JOB_STATUS_SUCCEEDED),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_x", now, body),
    }
    assert headers["webhook-signature"].startswith("v1,")
    parsed = Webhook(secret).verify(body, headers)
    assert parsed["type"] == "job.succeeded"
    assert parsed["data"]["job"]["status"] == "JOB_STATUS_SUCCEEDED"


def _listener() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    return server


def test_a_stop_cuts_off_a_try_to_a_receiver_that_never_answers() -> None:
    server = _listener()
    backend = InterruptibleBackend()
    client = http_client(60, backend)
    target = resolve(f"http://127.0.0.1:{server.getsockname()[1]}/hook", LOOPBACK)
    outcome: list[BaseException] = []

    def deliver() -> None:
        try:
            post(client, target, b"{}", {})
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=deliver)
    thread.start()
    accepted, _ = server.accept()
    accepted.settimeout(10)
    assert accepted.recv(65536).startswith(b"POST /hook")  # sent, and never answered
    started = time.monotonic()
    backend.interrupt()
    thread.join(10)
    assert not thread.is_alive() and outcome, "the try was not cut off"
    assert time.monotonic() - started < 5  # not the 60 s timeout
    accepted.close()
    server.close()


def test_an_answer_is_read_no_further_than_the_bound() -> None:
    server = _listener()
    sent: list[int] = []

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(1500):  # ~100 MB offered
                conn.sendall(chunk)
                sent.append(len(chunk))
        except OSError:
            pass  # the client hung up
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    with http_client(10) as client:
        target = resolve(f"http://127.0.0.1:{server.getsockname()[1]}/hook", LOOPBACK)
        assert post(client, target, b"{}", {}) == 200
    thread.join(30)
    assert sum(sent) < 100_000_000  # hung up long before the end
    server.close()
