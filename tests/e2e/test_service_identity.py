"""Service identity over mTLS: every service has a certificate of its own (one CA), naming
it spiffe://mp3mesh/<service> and by its DNS name; callers check the server's name (SAN)
and send it as SNI; servers authorize each method by the caller's identity
(mp3mesh/core/identity.py). A certificate of the same CA issued to another service is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import PASSWORD, ServiceStack, free_port, wait_for
from devstack.services import service_stack_with
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc
from tests.helpers import service_certificate

SERVICES = ("auth", "gateway", "shim")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="mp3mesh identity test CA")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return ca, d


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, pki: tuple[trustme.CA, Path]
) -> Iterator[ServiceStack]:
    ca, d = pki
    own = {name: service_certificate(ca, d, name) for name in SERVICES}
    own["auth"]["GRPC_HEALTH_PORT"] = str(free_port())
    common = {
        "TLS_CA_FILE": str(d / "ca.pem"),
        **service_certificate(ca, d, "envoy"),  # Envoy's; the tests call as an edge too
        "AUTH_TLS_NAME": "auth",
        "GATEWAY_TLS_NAME": "gateway",
    }
    with service_stack_with(
        tmp_path_factory.mktemp("identity"),
        ("mongo", *SERVICES, "envoy"),
        own,
        common,
    ) as stack:
        yield stack


def _credentials(pki: tuple[trustme.CA, Path], service: str | None) -> grpc.ChannelCredentials:
    ca, d = pki
    files = service_certificate(ca, d / "callers", service)
    return grpc.ssl_channel_credentials(
        ca.cert_pem.bytes(),
        Path(files["TLS_KEY_FILE"]).read_bytes(),
        Path(files["TLS_CERT_FILE"]).read_bytes(),
    )


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def _calls(mesh: ServiceStack, credentials: grpc.ChannelCredentials, token: str) -> dict[str, str]:
    """What each of the mesh's methods answers this caller (over mTLS, to 127.0.0.1)."""
    auth_ch = grpc.secure_channel(mesh.env["AUTH_LISTEN"], credentials)
    files_ch = grpc.secure_channel(mesh.env["GATEWAY_LISTEN"], credentials)
    auth, files = auth_pb2_grpc.AuthServiceStub(auth_ch), files_pb2_grpc.FileServiceStub(files_ch)
    bearer = (("authorization", f"Bearer {token}"),)
    try:
        return {
            "Login": _code(
                lambda: auth.Login(auth_pb2.LoginRequest(email="x@example.com", password="p" * 8))
            ),
            "ValidateToken": _code(
                lambda: auth.ValidateToken(auth_pb2.ValidateTokenRequest(token=token))
            ),
            "GetJwks": _code(lambda: auth.GetJwks(auth_pb2.GetJwksRequest())),
            "ListJobs": _code(lambda: files.ListJobs(files_pb2.ListJobsRequest(), metadata=bearer)),
            "Health": _code(
                lambda: health_pb2_grpc.HealthStub(auth_ch).Check(health_pb2.HealthCheckRequest())
            ),
        }
    finally:
        auth_ch.close()
        files_ch.close()


def test_the_mesh_works_with_an_identity_per_service(mesh: ServiceStack) -> None:
    """Envoy -> auth, gateway; gateway -> auth; shim -> auth, gateway: each checking the
    other's name (AUTH_TLS_NAME=auth, GATEWAY_TLS_NAME=gateway) and presenting its own."""
    for url in (mesh.envoy_url, mesh.shim_url):
        with httpx.Client(base_url=url, timeout=60) as http:
            email = f"id-{url[-5:]}@example.com"
            assert http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
            token = http.post("/login", auth=(email, PASSWORD)).json()["token"]
            jobs = http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert jobs.status_code == 200, (url, jobs.text)
    rendered = (Path(mesh.env["MP3MESH_VAR"]) / "envoy.yaml").read_text()
    for name in ("auth", "gateway"):
        assert f'"sni": "{name}"' in rendered
        assert json.dumps({"san_type": "DNS", "matcher": {"exact": name}}) in rendered


def test_each_method_answers_only_the_services_that_may_call_it(
    mesh: ServiceStack, pki: tuple[trustme.CA, Path]
) -> None:
    """A certificate of the same CA issued to another service (the converter, the
    notifier, the gateway on the edges' methods, one naming no service) is refused."""
    token = mesh.new_user().token
    denied = "PERMISSION_DENIED"
    matrix = {
        who: _calls(mesh, _credentials(pki, who), token)
        for who in ("envoy", "shim", "gateway", "converter", "notification", None)
    }
    print("\ncaller -> answers:\n" + "\n".join(f"  {who}: {row}" for who, row in matrix.items()))
    for edge in ("envoy", "shim"):
        assert denied not in matrix[edge].values(), matrix[edge]
    assert matrix["gateway"] == {
        "Login": denied, "ValidateToken": "OK", "GetJwks": "OK", "ListJobs": denied,
        "Health": "OK",
    }  # fmt: skip
    for stranger in ("converter", "notification", None):
        assert matrix[stranger] == {
            "Login": denied, "ValidateToken": denied, "GetJwks": denied, "ListJobs": denied,
            "Health": "OK",
        }, stranger  # fmt: skip


def test_the_refusal_says_who_and_what(mesh: ServiceStack, pki: tuple[trustme.CA, Path]) -> None:
    with grpc.secure_channel(mesh.env["AUTH_LISTEN"], _credentials(pki, "converter")) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            auth_pb2_grpc.AuthServiceStub(ch).ValidateToken(
                auth_pb2.ValidateTokenRequest(token="x"), timeout=30
            )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == (
        "service 'converter' may not call /mp3mesh.auth.v1.AuthService/ValidateToken"
    )


def test_callers_refuse_a_server_without_the_expected_name(
    mesh: ServiceStack, pki: tuple[trustme.CA, Path], tmp_path: Path
) -> None:
    """auth's certificate (of the mesh's CA) does not name "gateway": a client, Envoy and
    the shim told to expect "gateway" there refuse it."""
    options = (("grpc.ssl_target_name_override", "gateway"),)
    with grpc.secure_channel(
        mesh.env["AUTH_LISTEN"], _credentials(pki, "envoy"), options=options
    ) as ch:
        code = _code(lambda: auth_pb2_grpc.AuthServiceStub(ch).GetJwks(auth_pb2.GetJwksRequest()))
    assert code == "UNAVAILABLE"
    shim_own = mesh.service_env["shim"]
    answers = {}
    try:
        mesh.restart("envoy", {"AUTH_TLS_NAME": "gateway"})
        # Its /readyz says auth is unreachable now: started without waiting for it.
        mesh.stop("shim")
        mesh.service_env["shim"] = {**shim_own, "AUTH_TLS_NAME": "gateway"}
        mesh._spawn("shim")
        wait_for(lambda: _answers(f"{mesh.shim_url}/readyz"), "the shim answers", 60)
        for edge, url in (("envoy", mesh.envoy_url), ("shim", mesh.shim_url)):
            with httpx.Client(base_url=url, timeout=60) as http:
                answers[edge] = http.post("/login", auth=("x@example.com", PASSWORD)).status_code
    finally:
        mesh.restart("envoy", {})
        mesh.stop("shim")
        mesh.start("shim", shim_own)
    print(f"\nedges expecting 'gateway' at auth's address: {answers}")
    assert answers == {"envoy": 503, "shim": 503}


def test_probes_get_a_plaintext_port_with_health_alone(mesh: ServiceStack) -> None:
    """kubelet's gRPC probes speak no TLS: GRPC_HEALTH_PORT serves them grpc.health.v1 in
    plaintext, and nothing else; the service port takes no plaintext at all."""
    host = mesh.env["AUTH_LISTEN"].rsplit(":", 1)[0]
    health_port = mesh.service_env["auth"]["GRPC_HEALTH_PORT"]
    with grpc.insecure_channel(f"{host}:{health_port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="mp3mesh.auth.v1.AuthService"), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        login = _code(lambda: auth_pb2_grpc.AuthServiceStub(ch).GetJwks(auth_pb2.GetJwksRequest()))
    assert login == "UNIMPLEMENTED"
    with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as ch:
        check = _code(
            lambda: health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        )
    assert check == "UNAVAILABLE"
