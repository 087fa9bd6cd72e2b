"""What the Kubernetes manifests run besides the services: the consumers' heartbeat probe
(`python -m mp3mesh.core.heartbeat`) and the migration step (`python -m mp3mesh.core.migrations`),
on the real broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import psycopg2
import pytest

from devstack import AMQP_URL, drop_queues, temp_database
from mp3mesh.core.amqp.consumer import Consumer, Outcome
from mp3mesh.core.heartbeat import Heartbeat


def probe(path: Path, max_age: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mp3mesh.core.heartbeat", str(path), "--max-age", str(max_age)],
        capture_output=True,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def test_the_probe_passes_only_on_a_recent_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    missing = probe(path, 60)
    assert missing.returncode == 1 and "no heartbeat" in missing.stderr
    Heartbeat(str(path)).beat()
    assert probe(path, 60).returncode == 0
    two_minutes_ago = time.time() - 120
    os.utime(path, (two_minutes_ago, two_minutes_ago))
    stale = probe(path, 60)
    assert stale.returncode == 1 and "120 s" in stale.stderr


def test_no_heartbeat_file_no_writes(tmp_path: Path) -> None:
    Heartbeat(None).beat()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"heartbeat.test-{uuid.uuid4().hex[:8]}"
    yield name
    drop_queues(name)


def test_a_consumer_beats_while_idle_and_while_a_handler_runs(queue: str, tmp_path: Path) -> None:
    """The liveness signal keeps coming during a long job (the handler runs in a worker
    thread while the consume loop serves the connection), not only between jobs."""
    path = tmp_path / "heartbeat"
    handling, release = threading.Event(), threading.Event()

    def handler(body: bytes, properties: pika.BasicProperties) -> Outcome:
        handling.set()
        release.wait(30)
        return Outcome()

    consumer = Consumer(AMQP_URL, queue, handler, [queue], heartbeat=Heartbeat(str(path)))
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_for(path.exists)
        idle_beat = mtime(path)
        wait_for(lambda: mtime(path) > idle_beat)  # beats again while idle
        assert probe(path, 5).returncode == 0
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        connection.channel().basic_publish("", queue, b"job")
        connection.close()
        wait_for(handling.is_set)
        busy_beat = mtime(path)
        wait_for(lambda: mtime(path) > busy_beat)  # and while the handler is busy
        assert not release.is_set()
    finally:
        release.set()
        consumer.stop()
        thread.join(30)
    assert not thread.is_alive()


def test_the_migration_step_creates_the_services_tables() -> None:
    with temp_database("mp3mesh_migrate") as url:
        env = {**os.environ, "DATABASE_URL": url}
        for _ in range(2):  # idempotent: the services migrate again when they start
            subprocess.run(
                [sys.executable, "-m", "mp3mesh.core.migrations", "auth", "notification"],
                env=env,
                check=True,
                capture_output=True,
            )
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = {row[0] for row in cur.fetchall()}
        conn.close()
        assert {"users", "sent_notifications"} <= tables
