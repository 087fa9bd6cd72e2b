"""The whole mesh under honcho, from the Procfile, exactly as `make up` runs it: the
tests' session stack (on reserved ports, with its own database, queues, MongoDB data and
mail folder, all removed afterwards) and the demo's (stack.env's ports)."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import jwt
import pika
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import MongoClient

from devstack.config import (
    AMQP_URL,
    PASSWORD,
    ROOT,
    TEST_WEBHOOK_RETRY_DELAYS,
    drop_queues,
    stack_env,
    temp_database,
)
from devstack.hangs import kill_tree, record_stacks
from mp3mesh.auth.tokens import load_private_key
from mp3mesh.cli.client import MeshClient, is_serving
from mp3mesh.core.tokens import key_id


@dataclass
class Stack:
    env: dict[str, str]
    var: Path
    log: Path
    process: subprocess.Popen[bytes]
    clients: list[MeshClient] = field(default_factory=list)

    @property
    def auth_address(self) -> str:
        return self.env["AUTH_LISTEN"]

    @property
    def gateway_address(self) -> str:
        return self.env["GATEWAY_LISTEN"]

    @property
    def shim_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SHIM_PORT']}"

    @property
    def envoy_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ENVOY_PORT']}"

    @property
    def maildir(self) -> Path:
        return self.var / "mail"

    def expired_token(self) -> str:
        """A token signed with this stack's key that expired two minutes ago."""
        past = time.time() - 120
        claims = {
            "sub": "u", "email": "e@example.com", "iat": past - 3600, "exp": past,
            "iss": "mp3mesh-auth", "aud": "mp3mesh", "jti": "j",
        }  # fmt: skip
        key = self.signing_key
        headers = {"kid": key_id(key.public_key())}
        return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """auth's private key: tokens signed with it pass every signature check."""
        return load_private_key(self.env["JWT_SIGNING_KEY_FILE"])

    def mongo(self) -> MongoClient:
        return MongoClient(self.env["MONGO_URL"])

    def client(self) -> MeshClient:
        c = MeshClient(self.auth_address, self.gateway_address)
        self.clients.append(c)
        return c

    def new_user(self) -> tuple[MeshClient, str]:
        c = self.client()
        address = f"user-{uuid.uuid4().hex[:12]}@example.com"
        c.register(address, PASSWORD)
        c.login(address, PASSWORD)
        return c, address

    def mails(self, job_id: str) -> list[EmailMessage]:
        found = []
        for path in (self.maildir / "new").glob("*"):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if msg["X-Mp3mesh-Job"] == job_id:
                found.append(msg)
        return found

    def wait_for_mail(self, job_id: str, timeout: float = 60) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.mails(job_id):
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no email for job {job_id} within {timeout} s")

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(messages, consumers) of a queue, as the broker sees it now."""
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            ok = conn.channel().queue_declare(queue, passive=True)
            return ok.method.message_count, ok.method.consumer_count
        finally:
            conn.close()

    def service_process(self, service: str) -> psutil.Process:
        """The process of ``python -m mp3mesh.<service>`` under this stack's honcho."""
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if cmd[-2:] == ["-m", f"mp3mesh.{service}"]:
                return child
        raise LookupError(service)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


def http_ok(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx.get(url, timeout=2, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def consumed(s: Stack, queue: str) -> bool:
    try:
        return s.queue_depth(queue)[1] > 0
    except pika.exceptions.AMQPError:
        return False


def start_honcho(env_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """The Procfile under honcho with ``env_file``'s settings, its output in ``log``."""
    return subprocess.Popen(
        ["honcho", "-f", str(ROOT / "Procfile"), "-e", str(env_file), "start"],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"},
    )


def stop_honcho(
    process: subprocess.Popen[bytes], timeout: float = 30, log: Path | None = None
) -> None:
    """SIGTERM to honcho, which stops every process it started; past ``timeout``, the
    stacks of what still runs (devstack.hangs, into ``log`` too), then SIGKILL to honcho and
    every process under it (none is left behind holding its ports)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        why = f"honcho's processes still running {timeout:g} s after SIGTERM"
        record_stacks(process.pid, log, why)
        kill_tree(process.pid)
        process.wait()


@contextmanager
def honcho_stack(var: Path, timeout: float = 120) -> Iterator[Stack]:
    """A private mesh under honcho, every process of the Procfile, data under ``var``;
    yielded once every server serves and both consumers consume. Torn down afterwards
    with its database and queues."""
    resources = ExitStack()
    database_url = resources.enter_context(temp_database("mp3mesh_test"))
    env = stack_env(var, database_url)
    env_file = var / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    log = var / "stack.log"
    process = start_honcho(env_file, log)
    s = Stack(env=env, var=var, log=log, process=process)
    try:
        deadline = time.monotonic() + timeout
        while not (
            is_serving(s.auth_address)
            and is_serving(s.gateway_address)
            and http_ok(f"{s.shim_url}/readyz")
            and http_ok(f"{s.envoy_url}/readyz")
            and consumed(s, env["VIDEO_QUEUE"])
            and consumed(s, env["MP3_QUEUE"])
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stack did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield s
    finally:
        for c in s.clients:
            c.close()
        stop_honcho(process, log=log)
        drop_queues(
            env["VIDEO_QUEUE"],
            env["MP3_QUEUE"],
            exchanges=[env["JOB_EVENTS_EXCHANGE"], env["REVOCATIONS_EXCHANGE"]],
        )
        drop_queues(env["WEBHOOK_QUEUE"], retry_delays=TEST_WEBHOOK_RETRY_DELAYS)
        resources.close()
