"""What a private stack is made of: its settings (ports, queue names, data directory,
signing key), a temporary PostgreSQL database, and the clean-up of its queues on the
shared broker. PostgreSQL and RabbitMQ are the machine's real servers."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import psycopg2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic_settings import BaseSettings

from devstack.ports import free_port
from mp3mesh.auth.settings import AuthSettings
from mp3mesh.auth.tokens import private_pem
from mp3mesh.converter.settings import ConverterSettings
from mp3mesh.core.amqp.topology import dead_letter_queue, retry_queue
from mp3mesh.core.settings import DATABASE_URL
from mp3mesh.gateway.settings import GatewaySettings
from mp3mesh.notification.settings import NotificationSettings
from mp3mesh.shim.settings import ShimSettings

ROOT = Path(__file__).resolve().parent.parent
# The project's own PostgreSQL cluster (scripts/postgres.sh), the one the local stack
# uses; its password reaches libpq, and so every process the tests start, through the
# password file.
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", DATABASE_URL.rsplit("/", 1)[0] + "/postgres")
os.environ.setdefault("PGPASSFILE", str(ROOT / "var/postgres/pgpass"))
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# Small enough that the oversize case is quick, large enough for the 100 MB cases.
TEST_MAX_UPLOAD_BYTES = 128 * 1024 * 1024
PASSWORD = "correct horse battery staple"
# The stacks' retry delays: short, so a retried job does not keep a test waiting.
TEST_RETRY_DELAYS = (1.0, 2.0, 5.0)


# Each process of the mesh and the settings class it reads its environment with.
SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "auth": AuthSettings,
    "gateway": GatewaySettings,
    "converter": ConverterSettings,
    "notification": NotificationSettings,
    "shim": ShimSettings,
}


@contextmanager
def temp_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the real server; its URL. Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def with_password(database_url: str, port: int) -> str:
    """``database_url`` with its password from the password file in it, at ``port``: for
    processes that have no PGPASSFILE (the k8s smoke test's pods, behind a relay)."""
    url = urlsplit(database_url)
    for line in Path(os.environ["PGPASSFILE"]).read_text().splitlines():
        host, _port, _db, user, password = line.split(":", 4)
        if host in ("*", url.hostname) and user == url.username:
            netloc = f"{user}:{quote(password, safe='')}@{url.hostname}:{port}"
            return urlunsplit(url._replace(netloc=netloc))
    raise LookupError(f"no password for {url.username}@{url.hostname} in PGPASSFILE")


def stack_env(var: Path, database_url: str, **overrides: str) -> dict[str, str]:
    """Settings for one private stack: reserved ports (devstack.ports), its own queues,
    data under ``var``."""
    tag = uuid.uuid4().hex[:10]
    mongo_port = free_port()
    auth, gateway = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {
        "MP3MESH_ENV": "development",
        "LOG_FORMAT": "json",
        "MP3MESH_VAR": str(var),
        "MONGO_PORT": str(mongo_port),
        "MONGO_URL": f"mongodb://127.0.0.1:{mongo_port}",
        "MONGO_DB": "mp3mesh_test",
        "DATABASE_URL": database_url,
        "AMQP_URL": f"{AMQP_URL}?heartbeat=30",
        "VIDEO_QUEUE": f"video.test-{tag}",
        "MP3_QUEUE": f"mp3.test-{tag}",
        "JOB_EVENTS_EXCHANGE": f"job.events.test-{tag}",
        "REVOCATIONS_EXCHANGE": f"auth.revocations.test-{tag}",
        "AUTH_LISTEN": auth,
        "AUTH_ADDRESS": auth,
        "GATEWAY_LISTEN": gateway,
        "GATEWAY_ADDRESS": gateway,
        "SHIM_PORT": str(free_port()),
        "ENVOY_PORT": str(free_port()),
        "ENVOY_ADMIN_PORT": str(free_port()),
        **{f"{service.upper()}_METRICS_PORT": str(free_port()) for service in SERVICE_SETTINGS},
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "JWT_SIGNING_KEY_FILE": str(new_signing_key(var / "jwt-signing-key.pem")),
        "MAX_UPLOAD_BYTES": str(TEST_MAX_UPLOAD_BYTES),
        "WORK_DIR": str(var / "converter-work"),
        "RETRY_DELAYS_SECONDS": json.dumps(TEST_RETRY_DELAYS),
        # Every test logs in from 127.0.0.1: per-address limits out of the way (the
        # throttling tests set their own; the per-account one stays).
        "LOGIN_FAILURES_PER_ADDRESS": "100000/minute",
        "LOGIN_REQUESTS_PER_MINUTE": "100000",
        "REGISTRATIONS_PER_ADDRESS_PER_HOUR": "100000",
        # The broker-cut fault test uploads 20 videos at once from one account.
        "MAX_UPLOADS_PER_USER": "32",
        "PYTHONUNBUFFERED": "1",
    }
    return {**env, **overrides}


def new_signing_key(path: Path) -> Path:
    """A new Ed25519 private key (PEM, mode 0600) at ``path``, for a stack's auth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    path.chmod(0o600)
    return path


def drop_queues(
    *queues: str, retry_delays: Sequence[float] = TEST_RETRY_DELAYS, exchanges: Sequence[str] = ()
) -> None:
    """Delete the queues with their dead-letter and retry queues, and ``exchanges`` (the
    broker is shared)."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    for q in queues:
        for name in (q, dead_letter_queue(q), *(retry_queue(q, d) for d in retry_delays)):
            channel.queue_delete(name)
    for exchange in exchanges:
        channel.exchange_delete(exchange)
    conn.close()
