"""Faults of the whole broker, on a RabbitMQ node of the suite's own (own_broker,
tests/faults/broker_node.py): the memory alarm that blocks every publisher, every
connection closed by ``rabbitmqctl close_all_connections``, and the broker restarted
under the subscriptions that keep a process current. The services under test are
restarted on that node for the test and put back on the machine's broker after it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from bson import ObjectId

from devstack import ServiceStack, wait_for
from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core import jobs
from mp3mesh.core.revocations import TOKEN_ROUTING_KEY, RevocationFeed, revocation_message
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.job_events import JobEventSubscriber
from tests.faults.broker_node import BrokerNode
from tests.faults.helpers import EXTRACTING, Tally, assert_converted_once, mail_count
from tests.helpers import publish_notice

pytestmark = pytest.mark.faults

ALARM_SECONDS = 15


def received(mesh: ServiceStack) -> Counter[str]:
    """How many times the converters were handed each job (every delivery is logged)."""
    return Counter(
        str(e["job_id"]) for e in mesh.log_events("converter") if e["event"] == "job received"
    )


def test_a_memory_alarm_during_uploads_announces_and_converts_each_job_once(
    mesh: ServiceStack, tally: Tally, media: Path, own_broker: BrokerNode
) -> None:
    """The broker blocks every publisher for 15 s while uploads go on: uploads are
    answered (their announcements wait in the outbox), nothing is published twice when
    the alarm clears, and each job is delivered, converted and mailed once."""
    on_node = {"AMQP_URL": own_broker.url}
    with mesh.through(on_node, "gateway", "converter", "notification"):
        client = mesh.new_user()
        clip = media / "clip.mp4"
        with ThreadPoolExecutor(4) as pool:
            before = [pool.submit(client.upload, clip) for _ in range(3)]
            wait(before)
            during: list[Future] = []  # type: ignore[type-arg]
            outbox_peak = 0
            with own_broker.memory_alarm():
                alarm_at = time.monotonic()
                while time.monotonic() - alarm_at < ALARM_SECONDS:
                    if len(during) < 9 and sum(not u.done() for u in during) < 3:
                        during.append(pool.submit(client.upload, clip))
                    pending = mesh.db()[jobs.COLLECTION].count_documents(
                        {"announce_queue": mesh.env["VIDEO_QUEUE"]}
                    )
                    outbox_peak = max(outbox_peak, pending)
                    time.sleep(0.3)
                answered_in_alarm = sum(u.done() for u in during)
            lifted_at = time.monotonic()
        job_ids = [tally.submitted(u.result().id) for u in [*before, *during]]
        settled = []
        for n, job_id in enumerate(job_ids):
            done = client.wait(job_id, timeout=300)
            settled.append(time.monotonic() - lifted_at)
            assert_converted_once(mesh, done, attempts=1, last=n == len(job_ids) - 1)
        deliveries = received(mesh)
    print(f"{len(during)} uploads during a {ALARM_SECONDS} s memory alarm, "
          f"{answered_in_alarm} answered before it cleared; at most {outbox_peak} "
          f"announcements waited in the outbox; every job SUCCEEDED "
          f"{max(settled):.1f} s after the alarm cleared; deliveries per job: "
          f"{sorted(Counter(deliveries[j] for j in job_ids).items())}")  # fmt: skip
    assert answered_in_alarm > 0, "uploads are answered while the broker blocks publishers"
    assert outbox_peak > 0, "the alarm held announcements back"
    assert {j: deliveries[j] for j in job_ids} == dict.fromkeys(job_ids, 1)


def test_every_broker_connection_closed_during_a_conversion_mail_within_30_s(
    mesh: ServiceStack, tally: Tally, long_video: Path, own_broker: BrokerNode
) -> None:
    """`rabbitmqctl close_all_connections` mid-conversion, with the converter's retry
    delays long as in production: the result goes out through the outbox, not through a
    redelivery that waits out the delays."""
    on_node = {"AMQP_URL": own_broker.url}
    try:
        with mesh.through(on_node, "gateway", "notification"):
            mesh.restart("converter", {**on_node, "RETRY_DELAYS_SECONDS": "[60, 600]"})
            client = mesh.new_user()
            job_id = tally.submitted(client.upload(long_video).id)
            mesh.child("converter", EXTRACTING)
            closed = own_broker.close_all_connections().strip().splitlines()[-1]
            closed_at = time.monotonic()
            done = client.wait(job_id, timeout=300)
            succeeded_at = time.monotonic()
            wait_for(lambda: mail_count(mesh, job_id) > 0, "the mail", timeout=30)
            print(f"{closed} mid-conversion; SUCCEEDED {succeeded_at - closed_at:.1f} s later, "
                  f"the mail {time.monotonic() - succeeded_at:.1f} s after SUCCEEDED")  # fmt: skip
            assert_converted_once(mesh, done, attempts=1)
    finally:
        mesh.restart("converter", {})


def test_subscriptions_resubscribe_catch_up_and_go_on_after_a_broker_restart(
    own_broker: BrokerNode,
) -> None:
    """The revocation feed and the gateway's job events, subscribed, then the broker
    restarted under them (``rabbitmqctl stop_app``: its listeners go and every
    connection is closed; then ``start_app``): each subscribes again, catches up on
    what it may have missed (the revocations' snapshot read again; the watchers told to
    read the record again), and gets the notices published after."""
    suffix = uuid.uuid4().hex[:10]
    revocations_exchange, events_exchange = f"revocations-{suffix}", f"job-events-{suffix}"
    snapshots: list[float] = []

    def snapshot() -> list[auth_pb2.Revocation]:
        snapshots.append(time.monotonic())
        return []

    feed = RevocationFeed(own_broker.url, revocations_exchange, snapshot)
    events = JobEventSubscriber(own_broker.url, events_exchange)
    job_id = str(ObjectId())

    async def scenario() -> float:
        with events.watching(job_id) as changes:
            await events.start(wait=60)
            feed.start()
            assert await asyncio.wait_for(changes.get(), 60) is None, "subscribed: read"
            assert await asyncio.to_thread(feed.revocations.wait_loaded, 60)
            await asyncio.to_thread(own_broker.ctl, "stop_app")
            stopped = time.monotonic()
            await asyncio.to_thread(own_broker.ctl, "start_app")
            assert await asyncio.wait_for(changes.get(), 60) is None, "resubscribed: read again"
            await asyncio.to_thread(
                wait_for, lambda: len(snapshots) == 2, "the snapshot read again", 60
            )
            caught_up = time.monotonic() - stopped
            expires = time.time() + 600
            await asyncio.to_thread(
                publish_notice,
                own_broker.url,
                revocations_exchange,
                TOKEN_ROUTING_KEY,
                revocation_message("after-restart", expires),
            )
            notice = events_pb2.JobChanged(job=files_pb2.Job(id=job_id))
            await asyncio.to_thread(publish_notice, own_broker.url, events_exchange, job_id, notice)
            changed = await asyncio.wait_for(changes.get(), 30)
            assert changed is not None and changed.id == job_id
            await asyncio.to_thread(
                wait_for,
                lambda: feed.revocations.revoked("after-restart"),
                "a revocation published after the restart",
                30,
            )
            return caught_up

    try:
        caught_up = asyncio.run(scenario())
    finally:
        feed.close()
        events.close()
    print(f"both subscriptions renewed and caught up {caught_up:.1f} s after stop_app returned")
