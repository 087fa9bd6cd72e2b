"""What the tests share besides the stack (devstack): tokens signed for a test, waiting
for a condition, ffprobe, a notice published on a topic exchange, Envoy's renderer and the
environment each process reads."""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pika
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf.message import Message

from devstack.config import ROOT, SERVICE_SETTINGS
from mp3mesh.core.amqp import declare_topic, publish_event
from mp3mesh.core.settings import env_names
from mp3mesh.core.tokens import key_id


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


def sign_token(claims: dict[str, Any], key: Ed25519PrivateKey, **headers: Any) -> str:
    """``claims`` signed with ``key``, naming it (``kid``) unless ``headers`` say otherwise."""
    headers = {"kid": key_id(key.public_key()), **headers}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


def publish_notice(url: str, exchange: str, routing_key: str, message: Message) -> None:
    """``message`` published on the topic ``exchange`` (declared if new), as the services
    publish their notices, over a connection of its own to the broker at ``url``."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        declare_topic(channel, exchange)
        publish_event(channel, exchange, routing_key, message)
    finally:
        connection.close()


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
