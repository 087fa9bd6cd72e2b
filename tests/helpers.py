"""What the tests share: the real stack's handle, free ports, temp databases, sample
videos, memory sampling. Test modules import these from here; conftest.py holds only
the fixtures and hooks pytest finds by itself."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import importlib.util
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import httpx
import imageio_ffmpeg
import jwt
import pika
import psutil
import psycopg2
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic_settings import BaseSettings
from pymongo import MongoClient

from auth.settings import AuthSettings
from auth.tokens import load_private_key, private_pem
from cli.client import MeshClient
from converter.settings import ConverterSettings
from gateway.settings import GatewaySettings
from meshcore.amqp import dead_letter_queue, retry_queue
from meshcore.client_address import CLIENT_ADDRESS_KEY
from meshcore.settings import DATABASE_URL, env_names
from meshcore.tokens import key_id
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from notification.settings import NotificationSettings
from shim.settings import ShimSettings

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


def envoy_renderer() -> ModuleType:
    """envoy/render.py, loaded by path: it is a script (envoy/ is no package)."""
    name = "mp3mesh_envoy_render"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "envoy/render.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def service_env_names() -> dict[str, set[str]]:
    """The environment variables each process of the mesh reads, Envoy included: what a
    deployment (stack.env, the tests' stack, Kubernetes manifests) may set for it."""
    names = {service: env_names(cls) for service, cls in SERVICE_SETTINGS.items()}
    names["envoy"] = set(envoy_renderer().ENV_NAMES)
    return names


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
    """Settings for one private stack: free ports, its own queues, data under ``var``."""
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


def service_certificate(
    ca: trustme.CA, directory: Path, service: str | None, *names: str
) -> dict[str, str]:
    """A certificate of ``ca`` for ``service`` (its SPIFFE id spiffe://mp3mesh/<service>,
    and the DNS names ``names`` or the service's name, and 127.0.0.1), for server and
    client use; None: one naming no service. TLS_CERT_FILE and TLS_KEY_FILE settings."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    label = service or "nobody"
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (names or (label,))]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    if service:
        sans.append(x509.UniformResourceIdentifier(f"spiffe://mp3mesh/{service}"))
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{label}.crt", directory / f"{label}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"TLS_CERT_FILE": str(cert_file), "TLS_KEY_FILE": str(key_file)}


def login_from(stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str, address: str) -> str:
    """Login as an edge calls it for a client at ``address``: "OK" or the status's name."""
    try:
        stub.Login(
            auth_pb2.LoginRequest(email=email, password=password),
            metadata=((CLIENT_ADDRESS_KEY, address),),
            timeout=120,
        )
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def new_signing_key(path: Path) -> Path:
    """A new Ed25519 private key (PEM, mode 0600) at ``path``, for a stack's auth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    path.chmod(0o600)
    return path


def sign_token(claims: dict[str, Any], key: Ed25519PrivateKey, **headers: Any) -> str:
    """``claims`` signed with ``key``, naming it (``kid``) unless ``headers`` say otherwise."""
    headers = {"kid": key_id(key.public_key()), **headers}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def make_video(
    path: Path,
    seconds: float,
    *,
    audio: bool = True,
    size: str = "320x240",
    bitrate: str = "",
    noise: bool = False,
) -> Path:
    """A test pattern video, with a 440 Hz tone unless audio=False. Noise on the picture
    makes the encoder spend the whole bitrate, for files of a predictable size."""
    picture = f"testsrc2=size={size}:rate=25:duration={seconds}"
    args = ["-f", "lavfi", "-i", picture + (",noise=alls=30:allf=t" if noise else "")]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:a",
            "aac",
        ]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if bitrate:
        args += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    ffmpeg(*args, str(path))
    return path


def make_long_audio_video(path: Path, seconds: int) -> Path:
    """Long stereo audio behind a 16x16 picture at 1 frame/s: 40 minutes is 19 MB, made in
    under a second (ADPCM), and keeps the converter's ffmpeg busy for about 10 s."""
    # fmt: off
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c=black:size=16x16:rate=1:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=8000:duration={seconds}",
        "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "adpcm_ima_wav",
        str(path),
    )
    # fmt: on
    return path


def ffprobe(path: Path) -> dict:
    """ffprobe's streams (codec name and type) and duration of a media file."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type:format=duration",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


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
        return sign_token(claims, self.signing_key)

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
        return found  # type: ignore[return-value]

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

    def service_process(self, module: str) -> psutil.Process:
        """The process of ``python -m <module>`` under this stack's honcho."""
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if cmd[-2:] == ["-m", module]:
                return child
        raise LookupError(module)


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


class PeakRss:
    """Samples a process's resident memory every 20 ms while in the with-block."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.before = self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def growth(self) -> int:
        return self.peak - self.before

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)
