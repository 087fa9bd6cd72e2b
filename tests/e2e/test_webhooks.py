"""Webhooks on the real stack: a real HTTP receiver that verifies each signature with the
standardwebhooks library, down for 60 s while jobs end, then back: every event arrives,
each webhook-id is accepted once (a retry after a lost answer is recognised by its id),
and each try is logged on the job. Also: 410 disables the endpoint; a target in a
private network is refused; registration over both edges."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from devstack import Stack, wait_for
from devstack.ports import free_port
from mp3mesh.files.v1 import files_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2

OUTAGE_SECONDS = 60.0


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1:``port``: verifies every request's signature,
    accepts each webhook-id once, and answers ``status``. ``drop_first`` ids get their
    first valid request accepted but no answer (the connection is cut), as when an
    answer is lost on the way back. While ``stalled`` is set, a request is read and
    never answered (until ``released``), as by a receiver that hangs."""

    port: int
    secret: str = ""
    status: int = 204
    drop_first: set[str] = field(default_factory=set)
    accepted: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: list[tuple[float, str]] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    stalls: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                mid = headers.get("webhook-id", "")
                if receiver.stalled.is_set():
                    receiver.stalls.append(mid)
                    receiver.released.wait(120)
                    self.close_connection = True
                    return
                receiver.requests.append((time.monotonic(), mid))
                try:
                    event = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError as exc:
                    receiver.rejected.append(f"{mid}: {exc}")
                    self.send_response(400)
                    self.end_headers()
                    return
                if mid in receiver.accepted:
                    receiver.duplicates.append(mid)
                else:
                    receiver.accepted[mid] = (time.monotonic(), event)
                    if mid in receiver.drop_first:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the listening socket closed, connections refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mp3mesh"


def _deliveries(client: Any, job_id: str) -> list[webhooks_pb2.WebhookDelivery]:
    return list(client.job(job_id).webhook_deliveries)


def _final(client: Any, job_id: str) -> files_pb2.Job:
    return client.wait(job_id, timeout=300)


def test_events_survive_a_60_second_outage_each_id_accepted_once(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    receiver = Receiver(free_port())  # down: nothing listens yet
    hook = client.create_webhook(receiver.url, ["job.succeeded", "job.failed"])
    receiver.secret = hook.secret
    assert hook.secret.startswith("whsec_") and hook.id
    listed = client.list_webhooks()
    assert [(w.id, w.url, w.secret) for w in listed] == [(hook.id, receiver.url, "")]

    down_at = time.monotonic()
    ok = client.upload(media / "clip.mp4").id
    bad = client.upload(media / "notes.txt").id
    assert _final(client, ok).status == files_pb2.JOB_STATUS_SUCCEEDED
    assert _final(client, bad).status == files_pb2.JOB_STATUS_FAILED

    def tried_twice() -> bool:
        logs = [_deliveries(client, ok), _deliveries(client, bad)]
        return all(len(d) == 1 and d[0].attempts >= 2 for d in logs)

    wait_for(tried_twice, "both events tried twice against the closed port", timeout=120)
    while_down = {job: _deliveries(client, job)[0] for job in (ok, bad)}
    for delivery in while_down.values():
        assert delivery.state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_PENDING
        assert delivery.last_status_code == 0 and "no answer" in delivery.last_error
        assert delivery.webhook_id == hook.id
    ids = {job: while_down[job].message_id for job in (ok, bad)}
    assert while_down[ok].event_type == "job.succeeded"
    assert while_down[bad].event_type == "job.failed"
    # The first valid try of the success event is taken, its answer lost: the retry
    # that follows carries the same id and is recognised.
    receiver.drop_first = {ids[ok]}

    time.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))
    up_at = time.monotonic()
    receiver.start()
    try:

        def delivered() -> bool:
            return all(
                _deliveries(client, job)[0].state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED
                for job in (ok, bad)
            )

        wait_for(delivered, "both events delivered after the receiver came back", 120)
    finally:
        receiver.stop()

    assert receiver.rejected == []
    assert set(receiver.accepted) == set(ids.values())  # every event, each id once
    assert ids[ok] in receiver.duplicates  # the retry after the lost answer
    assert receiver.accepted[ids[ok]][1]["type"] == "job.succeeded"
    assert receiver.accepted[ids[ok]][1]["data"]["job"]["id"] == ok
    assert receiver.accepted[ids[bad]][1]["data"]["job"]["status"] == "JOB_STATUS_FAILED"
    after = {job: _deliveries(client, job)[0] for job in (ok, bad)}
    for job in (ok, bad):
        assert after[job].attempts > while_down[job].attempts
        assert after[job].last_status_code == 204 and after[job].last_error == ""
        assert after[job].message_id == ids[job]
    figures = {
        "outage_seconds": round(up_at - down_at, 1),
        "delay_after_up_seconds": {
            job: round(receiver.accepted[mid][0] - up_at, 1) for job, mid in ids.items()
        },
        "attempts": {job: after[job].attempts for job in (ok, bad)},
        "ids": ids,
        "requests_after_up": len(receiver.requests),
        "duplicates": receiver.duplicates,
    }
    print("webhook figures:", json.dumps(figures))


def test_410_disables_the_endpoint(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    receiver = Receiver(free_port(), status=410)
    hook = client.create_webhook(receiver.url)
    receiver.secret = hook.secret
    receiver.start()
    try:
        job = client.upload(media / "notes.txt").id
        _final(client, job)
        wait_for(lambda: client.list_webhooks()[0].disabled, "the endpoint disabled", 60)
    finally:
        receiver.stop()
    listed = client.list_webhooks()[0]
    assert "410" in listed.disabled_reason
    delivery = _deliveries(client, job)[0]
    assert delivery.state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_DROPPED
    assert delivery.last_status_code == 410 and delivery.attempts == 1
    assert len(receiver.requests) == 1  # no retry


def test_a_private_target_is_refused_without_a_try(stack: Stack, media: Path) -> None:
    """The stack allows loopback only; 10.x and the metadata address stay refused."""
    client, _ = stack.new_user()
    metadata = client.create_webhook("http://169.254.169.254/latest/meta-data/")
    private = client.create_webhook("http://10.0.0.7:8080/hook")
    job = client.upload(media / "notes.txt").id
    _final(client, job)

    def both_failed() -> bool:
        d = _deliveries(client, job)
        return len(d) == 2 and all(x.state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_FAILED for x in d)

    wait_for(both_failed, "both deliveries refused", 60)
    by_hook = {d.webhook_id: d for d in _deliveries(client, job)}
    assert "169.254.169.254 is not a public address" in by_hook[metadata.id].last_error
    assert "10.0.0.7 is not a public address" in by_hook[private.id].last_error
    assert all(d.attempts == 1 and d.last_status_code == 0 for d in by_hook.values())


@pytest.mark.parametrize("edge", ["shim_url", "envoy_url"])
def test_registration_over_rest(stack: Stack, edge: str) -> None:
    client, _ = stack.new_user()
    base = getattr(stack, edge)
    auth = {"authorization": f"Bearer {client.token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        created = http.post(
            "/v1/webhooks", json={"url": "https://example.com/hook", "events": ["job.failed"]}
        )
        assert created.status_code == 200, created.text
        hook = created.json()["webhook"]
        assert hook["secret"].startswith("whsec_") and hook["events"] == ["job.failed"]
        listed = http.get("/v1/webhooks").json()["webhooks"]
        assert [(w["id"], w["url"], w["secret"]) for w in listed] == [
            (hook["id"], "https://example.com/hook", "")
        ]
        bad = http.post("/v1/webhooks", json={"url": "ftp://example.com/x"})
        assert bad.status_code == 400
        assert bad.json()["message"] == "url must start with https:// or http://"
        assert http.delete(f"/v1/webhooks/{hook['id']}").status_code == 200
        assert http.get("/v1/webhooks").json()["webhooks"] == []
        gone = http.delete(f"/v1/webhooks/{hook['id']}")
        assert gone.status_code == 404
    assert httpx.get(f"{base}/v1/webhooks").status_code == 401


def test_registration_checks_over_grpc(stack: Stack) -> None:
    client, _ = stack.new_user()
    with pytest.raises(grpc.RpcError) as info:
        client.create_webhook("https://example.com/x", ["job.started"])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events: unknown event 'job.started'" in (info.value.details() or "")
    other, _ = stack.new_user()
    hook = client.create_webhook("https://example.com/x")
    with pytest.raises(grpc.RpcError) as info:
        other.delete_webhook(hook.id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert other.list_webhooks() == []


def test_cli_adds_lists_and_deletes_webhooks(stack: Stack, tmp_path: Path, media: Path) -> None:
    import uuid

    from tests.e2e.test_cli import Cli, one_line_error

    cli = Cli(tmp_path, f"127.0.0.1:{stack.env['ENVOY_PORT']}")
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    assert cli("register", email).returncode == 0
    assert cli("login", email).returncode == 0
    added = cli(
        "webhooks", "add", "https://example.com/hook", "--events", "job.succeeded,job.failed"
    )
    assert added.returncode == 0, added.stderr
    assert "job.succeeded, job.failed" in added.stdout and "whsec_" in added.stdout
    listed = cli.json("webhooks", "list")["webhooks"]
    assert [(w["url"], w["events"], w["disabled"]) for w in listed] == [
        ("https://example.com/hook", ["job.succeeded", "job.failed"], False)
    ]
    assert "secret" not in listed[0] or listed[0]["secret"] == ""
    bad = cli("webhooks", "add", "http://", "--events", "job.succeeded")
    assert one_line_error(bad) == "url must name a host"
    assert cli("webhooks", "delete", listed[0]["id"]).returncode == 0
    assert cli.json("webhooks", "list") == {"webhooks": []}
    missing = cli("webhooks", "delete", listed[0]["id"])
    assert f"no webhook {listed[0]['id']}" in one_line_error(missing)

    # A job's deliveries in `mp3mesh status` (a private target: refused at its first try).
    refused = cli.json("webhooks", "add", "http://10.0.0.9/hook")["webhook"]["id"]
    job_id = cli.json("upload", str(media / "notes.txt"))["job"]["id"]
    expected = f"webhook  job.failed to {refused}: FAILED, 1 tries (webhook target address"
    wait_for(lambda: expected in cli("status", job_id).stdout, "the delivery in status", 60)


def test_a_job_finished_announced_again_is_not_sent_again(stack: Stack, media: Path) -> None:
    """The same JobFinished handled twice (a redelivery, or the relay announcing it again)
    queues no second delivery: the webhook-id is derived from job, event and endpoint."""
    import pika
    from bson import ObjectId

    from devstack import AMQP_URL
    from mp3mesh.core import jobs
    from mp3mesh.core.amqp.publisher import publish

    client, _ = stack.new_user()
    receiver = Receiver(free_port())
    receiver.secret = client.create_webhook(receiver.url).secret
    receiver.start()
    try:
        job_id = client.upload(media / "notes.txt").id
        _final(client, job_id)
        wait_for(lambda: len(receiver.accepted) == 1, "the event delivered", 60)
        record = stack.mongo()[stack.env["MONGO_DB"]]["jobs"].find_one({"_id": ObjectId(job_id)})
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        channel.confirm_delivery()
        publish(channel, stack.env["MP3_QUEUE"], jobs.job_finished(record), job_id)
        connection.close()

        def handled_again() -> bool:  # the mail handler runs the fan-out first
            return any(
                '"already notified; skipping"' in line and job_id in line
                for line in stack.log.read_text().splitlines()
            )

        wait_for(handled_again, "the JobFinished handled again", 60)
        deliveries = _deliveries(client, job_id)
    finally:
        receiver.stop()
    assert len(deliveries) == 1 and deliveries[0].attempts == 1
    assert deliveries[0].state == webhooks_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED
    assert len(receiver.requests) == 1 and receiver.duplicates == []
