"""Faults of the whole broker, on a RabbitMQ node of the suite's own (own_broker,
tests/faults/broker_node.py): the memory alarm that blocks every publisher, and every
connection closed by ``rabbitmqctl close_all_connections``. The services under test are
restarted on that node for the test and put back on the machine's broker after it."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from devstack import ServiceStack, wait_for
from mp3mesh.core import jobs
from tests.faults.broker_node import BrokerNode
from tests.faults.helpers import EXTRACTING, Tally, assert_converted_once, mail_count

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
