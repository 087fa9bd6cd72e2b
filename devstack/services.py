"""The mesh with every service as its own process, for tests that kill, pause or restart
one service while the others keep running.

honcho (the `stack` fixture, `make up`) stops everything when one process dies, which is
right for a developer's terminal and wrong for a fault test. Here each Procfile entry runs
by itself, with the same command line and the same kind of env file, in its own process
group (so a signal to "the converter's group" reaches what the converter started in it,
and nothing of the test's). PostgreSQL and RabbitMQ are the machine's shared servers:
the stack only ever uses its own database and queue names on them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pika
import psutil
from honcho.environ import parse_procfile
from pymongo import MongoClient

from devstack.config import (
    AMQP_URL,
    PASSWORD,
    ROOT,
    drop_queues,
    stack_env,
    temp_database,
)
from devstack.hangs import record_stacks
from devstack.stack import http_ok
from mp3mesh.cli.client import MeshClient, is_serving

# Retries cover a 60 s outage with room to spare (the last try comes 78 s after the
# first), at most 10 s apart so recovery is quick; SMTP timeouts short for hung servers.
FAULT_SETTINGS = {
    "RETRY_DELAYS_SECONDS": json.dumps([1, 2, 5, 10, 10, 10, 10, 10, 10, 10]),
    "SMTP_TIMEOUT_SECONDS": "5",
    "LEASE_SECONDS": "6",  # a killed converter's job is taken over within seconds
    "RELAY_INTERVAL_SECONDS": "1",
    "PUBLISH_TIMEOUT_SECONDS": "3",
    "MONGO_TIMEOUT_MS": "6000",
    "DATABASE_CONNECT_TIMEOUT_SECONDS": "3",
    "CONCURRENT_CONVERSIONS": "2",  # whatever the machine's cores: faults hit two jobs
    "UNFINISHED_UPLOAD_AGE_SECONDS": "10",  # a dead gateway's upload goes within seconds
}

# The order services start in: stores first, consumers last.
SERVICES = ("mongo", "smtp", "auth", "gateway", "converter", "notification", "shim")


@dataclass
class ServiceStack:
    env: dict[str, str]
    var: Path
    commands: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    clients: list[MeshClient] = field(default_factory=list)

    # --- running services -----------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.var / "logs" / f"{name}.log"

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        """Start one service (its Procfile command, in a new process group) and wait
        until it serves. ``env`` overrides settings for this service; a restart without
        ``env`` keeps the last ones."""
        if env is not None:
            self.service_env[name] = env
        running = self.processes.get(name)
        assert running is None or running.poll() is not None, f"{name} is already running"
        self._spawn(name)
        self._wait_ready(name)

    def _spawn(self, name: str) -> None:
        """Run the service's command in a new process group, its output to its log."""
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                ["/bin/sh", "-c", self.commands[name]],
                cwd=ROOT,
                env={
                    **os.environ,
                    **self.env,
                    **self.service_env.get(name, {}),
                    "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_another(self, name: str, like: str, env: dict[str, str]) -> None:
        """Start a second instance ``name`` of the service ``like`` (its Procfile command,
        with ``env`` over the stack's settings: its own ports) and wait until it serves:
        for a consumer, until the broker counts its consumers too."""
        consumer = like in ("converter", "notification")
        url = env.get("AMQP_URL", AMQP_URL)
        before = self.consumers(self._consumed_queue(like), url) if consumer else 0
        self.commands[name] = self.commands[like]
        self.service_env[name] = env
        self._spawn(name)
        deadline = time.monotonic() + 90
        while not (
            self.consumers(self._consumed_queue(like), url) > before
            if consumer
            else is_serving(env[f"{like.upper()}_LISTEN"], credentials=self.grpc_credentials())
        ):
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log_path(name).read_text()}")
            time.sleep(0.1)

    def _consumed_queue(self, name: str) -> str:
        return self.env["VIDEO_QUEUE" if name == "converter" else "MP3_QUEUE"]

    def process(self, name: str) -> psutil.Process:
        return psutil.Process(self.processes[name].pid)

    def send(self, name: str, sig: signal.Signals, *, group: bool = False) -> None:
        """Send ``sig`` to the service, or to its whole process group."""
        pid = self.processes[name].pid
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)

    def wait_exit(self, name: str, timeout: float = 30) -> float:
        """Seconds until the service exited; fails if it is still running after ``timeout``,
        after its stacks are dumped into its log and the test's output, and it is killed."""
        started = time.monotonic()
        try:
            self.processes[name].wait(timeout)
        except subprocess.TimeoutExpired:
            self._dump_and_kill(name, f"{name} still running {timeout:g} s after its stop")
            raise
        return time.monotonic() - started

    def _dump_and_kill(self, name: str, why: str) -> None:
        """What the service was doing (devstack.hangs), then SIGKILL to its process group."""
        proc = self.processes[name]
        record_stacks(proc.pid, self.log_path(name), why)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> float:
        self.send(name, sig)
        return self.wait_exit(name, timeout)

    def restart(self, name: str, env: dict[str, str] | None = None) -> None:
        """Stop the service if it runs (SIGTERM), start it with ``env`` ({} for none)."""
        if self.processes[name].poll() is None:
            self.stop(name)
        self.start(name, env)

    @contextmanager
    def through(self, proxy_env: dict[str, str], *names: str) -> Iterator[None]:
        """Run ``names`` with ``proxy_env`` (e.g. their broker behind a test's proxy) for
        the with-block, then as before."""
        for name in names:
            self.restart(name, proxy_env)
        try:
            yield
        finally:
            for name in names:
                self.restart(name, {})

    @contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """SIGSTOP the service for the with-block, SIGCONT after (whatever happens)."""
        self.send(name, signal.SIGSTOP)
        try:
            yield
        finally:
            self.send(name, signal.SIGCONT)

    def child(self, name: str, needle: str, timeout: float = 120) -> psutil.Process:
        """Wait for a child process of the service with ``needle`` in its command line."""
        return self.children(name, needle, 1, timeout)[0]

    def children(
        self, name: str, needle: str, count: int, timeout: float = 120
    ) -> list[psutil.Process]:
        """Wait until ``count`` child processes of the service with ``needle`` in their
        command lines run at the same time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.running(name, needle)) >= count:
                return found[:count]
            time.sleep(0.02)
        raise AssertionError(f"{name} did not run {count} processes with {needle} at once")

    def running(self, name: str, needle: str) -> list[psutil.Process]:
        """The service's child processes with ``needle`` in their command lines, now."""
        found = []
        for child in self.process(name).children(recursive=True):
            try:
                if needle in child.cmdline():
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def log_events(self, name: str) -> list[dict[str, object]]:
        """The service's JSON log lines, parsed (other lines skipped)."""
        events = []
        for line in self.log_path(name).read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events

    def shutdown(self) -> None:
        for c in self.clients:
            c.close()
        for name in reversed(self.commands):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self._dump_and_kill(name, f"{name} still running 15 s after SIGTERM")

    def _wait_ready(self, name: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready(name):
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                tail = self.log_path(name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} did not start:\n{tail}")
            time.sleep(0.1)

    def _ready(self, name: str) -> bool:
        if name in ("mongo", "smtp"):
            return _port_open(int(self.env[f"{name.upper()}_PORT"]))
        if name in ("auth", "gateway"):
            address = self.env[f"{name.upper()}_LISTEN"]
            return is_serving(address, credentials=self.grpc_credentials())
        if name == "shim":
            return http_ok(f"{self.shim_url}/readyz")
        if name == "envoy":
            ca = self.env.get("TLS_CA_FILE")
            trust = ssl.create_default_context(cafile=ca) if ca else True
            return http_ok(f"{self.envoy_url}/healthz", verify=trust)
        url = self.service_env.get(name, {}).get("AMQP_URL", AMQP_URL)
        return name in self.commands and self.consumers(self._consumed_queue(name), url) > 0

    # --- what the stack holds -----------------------------------------------------------

    @property
    def shim_url(self) -> str:
        """The local REST edge, the Starlette shim."""
        return f"http://127.0.0.1:{self.env['SHIM_PORT']}"

    @property
    def envoy_url(self) -> str:
        """The production REST edge, Envoy (only in stacks started with it); HTTPS when
        it was given a certificate."""
        scheme = "https" if self.env.get("ENVOY_TLS_CERT_FILE") else "http"
        return f"{scheme}://127.0.0.1:{self.env['ENVOY_PORT']}"

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        """A client certificate of the mesh's CA when the services speak mTLS, else None."""
        if not self.env.get("TLS_CA_FILE"):
            return None
        return grpc.ssl_channel_credentials(
            *(Path(self.env[f"TLS_{part}_FILE"]).read_bytes() for part in ("CA", "KEY", "CERT"))
        )

    def mongo(self) -> MongoClient:
        return MongoClient(self.env["MONGO_URL"], serverSelectionTimeoutMS=5000)

    def db(self):  # type: ignore[no-untyped-def]
        return self.mongo()[self.env["MONGO_DB"]]

    def queue_state(self, queue: str, url: str = AMQP_URL) -> tuple[int, int]:
        """(messages, consumers) of a queue on the broker at ``url`` (the machine's by
        default); (0, 0) if it does not exist yet."""
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            ok = conn.channel().queue_declare(queue, passive=True)
            return ok.method.message_count, ok.method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0, 0
        finally:
            if conn.is_open:
                conn.close()

    def consumers(self, queue: str, url: str = AMQP_URL) -> int:
        try:
            return self.queue_state(queue, url)[1]
        except pika.exceptions.AMQPConnectionError:
            return 0

    def new_user(self) -> MeshClient:
        return self.new_account()[0]

    def new_account(self) -> tuple[MeshClient, str]:
        """A registered, logged-in client and its email address."""
        c = MeshClient(
            self.env["AUTH_LISTEN"],
            self.env["GATEWAY_LISTEN"],
            credentials=self.grpc_credentials(),
        )
        self.clients.append(c)
        address = f"user-{uuid.uuid4().hex[:12]}@example.com"
        c.register(address, PASSWORD)
        c.login(address, PASSWORD)
        return c, address

    def mail_files(self) -> list[Path]:
        return sorted((self.var / "mail" / "new").glob("*"))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def service_stack(
    var: Path, services: tuple[str, ...] = SERVICES, **overrides: str
) -> Iterator[ServiceStack]:
    """A private stack of ``services`` (Procfile names, in start order; default: all but
    Envoy), each started separately; torn down afterwards with its database and queues."""
    with service_stack_with(var, services, {}, overrides) as stack:
        yield stack


@contextmanager
def service_stack_with(
    var: Path,
    services: tuple[str, ...],
    service_env: dict[str, dict[str, str]],
    overrides: dict[str, str],
) -> Iterator[ServiceStack]:
    """:func:`service_stack` with ``service_env``: settings of one service only (each
    service's own certificate, say)."""
    procfile = parse_procfile((ROOT / "Procfile").read_text())
    commands = {name: procfile.processes[name] for name in services}
    with temp_database("mp3mesh_faults") as database_url:
        env = stack_env(var, database_url, **{**FAULT_SETTINGS, **overrides})
        stack = ServiceStack(env=env, var=var, commands=commands, service_env=dict(service_env))
        try:
            for name in services:
                stack.start(name)
            yield stack
        finally:
            stack.shutdown()
            drop_queues(
                env["VIDEO_QUEUE"],
                env["MP3_QUEUE"],
                retry_delays=json.loads(env["RETRY_DELAYS_SECONDS"]),
                exchanges=[env["JOB_EVENTS_EXCHANGE"], env["REVOCATIONS_EXCHANGE"]],
            )
            drop_queues(
                env["WEBHOOK_QUEUE"],
                retry_delays=json.loads(env["WEBHOOK_RETRY_DELAYS_SECONDS"]),
            )
