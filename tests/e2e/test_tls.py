"""The mesh with TLS everywhere: Envoy serves HTTPS, and auth, the gateway, the shim and
Envoy speak gRPC to each other over mTLS, with certificates made for the test by trustme
(a CA of its own). A client without a certificate, or without TLS, is refused; production
mode refuses plaintext unless waived and turns reflection off."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import trustme
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devstack import PASSWORD, ROOT, ServiceStack
from devstack.services import service_stack_with
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.cli.client import channel
from tests.helpers import service_certificate


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The mesh's CA, Envoy's certificate (spiffe://mp3mesh/envoy, the stack's: the tests'
    own calls come as an edge's), one for Envoy's listener; PEM files. auth, the gateway
    and the shim get their own (:func:`per_service`)."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="mp3mesh test CA")
    edge = ca.issue_cert("127.0.0.1", "localhost", common_name="mp3mesh edge")
    files = {
        "TLS_CA_FILE": ca.cert_pem,
        "ENVOY_TLS_CERT_FILE": edge.cert_chain_pems[0],
        "ENVOY_TLS_KEY_FILE": edge.private_key_pem,
    }
    for name, blob in files.items():
        blob.write_to_path(str(d / f"{name.lower()}.pem"))
    paths = {name: str(d / f"{name.lower()}.pem") for name in files}
    CAS[paths["TLS_CA_FILE"]] = ca
    return {**paths, **service_certificate(ca, d, "envoy")}


# The CA of each certificates fixture, by its file: per_service issues more.
CAS: dict[str, trustme.CA] = {}


def per_service(certificates: dict[str, str], directory: Path) -> dict[str, dict[str, str]]:
    """auth's, the gateway's and the shim's own certificates, of the stack's CA."""
    ca = CAS[certificates["TLS_CA_FILE"]]
    return {name: service_certificate(ca, directory, name) for name in ("auth", "gateway", "shim")}


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, str]
) -> Iterator[ServiceStack]:
    var = tmp_path_factory.mktemp("tls")
    with service_stack_with(
        var,
        ("mongo", "auth", "gateway", "shim", "envoy"),
        per_service(certificates, var / "pki"),
        certificates,
    ) as stack:
        yield stack


def _login(address: str, credentials: grpc.ChannelCredentials | None, email: str) -> str:
    with channel(address, credentials) as ch:
        reply = auth_pb2_grpc.AuthServiceStub(ch).Login(
            auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30
        )
    return reply.token


def test_rest_over_https_through_envoy_and_mtls_behind_it(
    mesh: ServiceStack, certificates: dict[str, str]
) -> None:
    email = f"tls-{uuid.uuid4().hex[:12]}@example.com"
    assert mesh.envoy_url.startswith("https://")
    trust = ssl.create_default_context(cafile=certificates["TLS_CA_FILE"])
    with httpx.Client(base_url=mesh.envoy_url, verify=trust) as http:
        http.post("/v1/users", json={"email": email, "password": PASSWORD}).raise_for_status()
        token = http.post("/login", auth=(email, PASSWORD)).json()["token"]
        jobs = http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert jobs.status_code == 200, jobs.text  # Envoy -> gateway -> auth, each over mTLS
    with httpx.Client(base_url=mesh.shim_url) as http:  # the shim calls over mTLS too
        assert http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).is_success
    with pytest.raises(httpx.TransportError):  # plain HTTP to the HTTPS listener
        httpx.get(mesh.envoy_url.replace("https:", "http:") + "/v1/jobs", timeout=10)


def test_grpc_without_a_client_certificate_is_refused(
    mesh: ServiceStack, certificates: dict[str, str]
) -> None:
    _, email = mesh.new_account()  # with the mesh's client certificate: served
    address = mesh.env["AUTH_LISTEN"]
    assert _login(address, mesh.grpc_credentials(), email)
    ca = Path(certificates["TLS_CA_FILE"]).read_bytes()
    for credentials in (grpc.ssl_channel_credentials(ca), None):  # TLS, no cert; plaintext
        with pytest.raises(grpc.RpcError) as exc:
            _login(address, credentials, email)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    other_ca = trustme.CA()
    stranger = other_ca.issue_cert("stranger.example")
    foreign = grpc.ssl_channel_credentials(
        ca, stranger.private_key_pem.bytes(), stranger.cert_chain_pems[0].bytes()
    )
    with pytest.raises(grpc.RpcError) as exc:  # a certificate the mesh's CA did not sign
        _login(address, foreign, email)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def _run_auth(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run auth with ``env``: it is expected to refuse to start (a generous timeout
    otherwise, for a loaded machine)."""
    return subprocess.run(
        [sys.executable, "-m", "mp3mesh.auth"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_plaintext_grpc_unless_waived(mesh: ServiceStack) -> None:
    production = {
        **mesh.env,
        "MP3MESH_ENV": "production",
        "AMQP_URL": "",  # auth uses no broker
        "TLS_CA_FILE": "",
        "TLS_CERT_FILE": "",
        "TLS_KEY_FILE": "",
    }
    refused = _run_auth(production)
    assert refused.returncode == 1
    assert "production refuses plaintext gRPC between services" in refused.stderr


def test_production_turns_reflection_off_unless_asked(mesh: ServiceStack) -> None:
    """auth restarted in production mode (mTLS on): reflection answers UNIMPLEMENTED."""
    credentials = mesh.grpc_credentials()

    def reflected() -> grpc.StatusCode:
        with channel(mesh.env["AUTH_LISTEN"], credentials) as ch:
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            try:
                next(
                    reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                        iter([request]), timeout=10
                    )
                )
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[attr-defined, no-any-return]
        return grpc.StatusCode.OK

    assert reflected() == grpc.StatusCode.OK  # development: on
    mesh.restart("auth", {"MP3MESH_ENV": "production", "AMQP_URL": ""})
    try:
        assert reflected() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        mesh.restart("auth", {})


def test_the_cli_over_https_to_envoy(
    mesh: ServiceStack, certificates: dict[str, str], tmp_path: Path
) -> None:
    """`mp3mesh --ca-file` speaks gRPC over TLS to Envoy's HTTPS listener; without TLS, or
    without the CA, it says it cannot reach the server, in one line."""
    edge = f"127.0.0.1:{mesh.env['ENVOY_PORT']}"
    email = f"tls-cli-{uuid.uuid4().hex[:12]}@example.com"
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path),
        "MP3MESH_SERVER": edge,
        "MP3MESH_PASSWORD": PASSWORD,
    }

    def mp3mesh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / ".venv/bin/mp3mesh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    trusted = ("--ca-file", certificates["TLS_CA_FILE"])
    for args in (("register", email), ("login", email), ("--json", "whoami")):
        done = mp3mesh(*trusted, *args)
        assert done.returncode == 0, done.stderr
    assert email in done.stdout
    for untrusted in ((), ("--tls",)):  # plaintext to HTTPS; TLS without the test CA
        done = mp3mesh(*untrusted, "whoami")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"error: cannot reach {edge}"), done.stderr
