"""One REST conformance suite for both edges: the real Envoy (grpc_json_transcoder) and
the Starlette shim, both run by the Procfile in front of the shared test stack.

Every test taking ``edge`` runs once per edge; ``test_both_edges_answer_alike`` sends
the same requests to both and compares status, content type and body, the body byte for
byte unless Envoy wrote it itself (:func:`_made_by_envoy`). Tests taking
``shim`` are about the shim alone (its OpenAPI, health and memory).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import imageio_ffmpeg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devstack import PASSWORD, TEST_MAX_UPLOAD_BYTES, PeakRss, Stack, make_video, service_stack
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.cli.client import MeshClient
from mp3mesh.core.tokens import TokenVerifier, key_id, keys_from_jwks
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc
from mp3mesh.health.v1 import health_pb2
from tests.helpers import envoy_renderer, sign_token

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STATUS_KEYS = {"code", "message", "details"}
AUTH, FILES = "mp3mesh.auth.v1.AuthService", "mp3mesh.files.v1.FileService"
HEALTHY = {"status": "healthy", "services": {AUTH: "SERVING", FILES: "SERVING"}}


@dataclass
class Edge:
    name: str
    url: str
    auth_address: str
    gateway_address: str

    def http(self, token: str = "", timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def new_user(self) -> str:
        """Register and log in over REST; the bearer token."""
        email = f"rest-{uuid.uuid4().hex[:12]}@example.com"
        with self.http() as http:
            assert http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
            reply = http.post("/login", auth=(email, PASSWORD))
        assert reply.status_code == 200, reply.text
        return reply.json()["token"]


def _edge(stack: Stack, name: str) -> Edge:
    url = stack.envoy_url if name == "envoy" else stack.shim_url
    return Edge(name, url, stack.auth_address, stack.gateway_address)


@pytest.fixture(scope="module", params=["envoy", "shim"])
def edge(request: pytest.FixtureRequest, stack: Stack) -> Edge:
    return _edge(stack, request.param)


@pytest.fixture(scope="module")
def shim(stack: Stack) -> Edge:
    return _edge(stack, "shim")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of test pattern with a 440 Hz tone."""
    path = tmp_path_factory.mktemp("shim-media") / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4"),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
            str(path),
        ],
        check=True,
    )
    return path


def _watch(http: httpx.Client, job_id: str) -> list[dict]:
    """Every line WatchJob streams, until the job ends."""
    with http.stream("GET", f"/v1/jobs/{job_id}:watch") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        return [json.loads(line)["job"] for line in reply.iter_lines() if line]


def _assert_status(reply: httpx.Response, http_status: int, grpc_code: int) -> str:
    """A google.rpc.Status body with the right codes; its message."""
    assert reply.status_code == http_status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == STATUS_KEYS and body["details"] == []
    assert body["code"] == grpc_code
    return body["message"]


def test_seed_commands_end_to_end(edge: Edge, video: Path, tmp_path: Path) -> None:
    """login (curl -u), upload (-F file=@), status?fid=, download?fid=, as the seeds do."""
    token = edge.new_user()
    with edge.http(token) as http, video.open("rb") as f:
        uploaded = http.post("/upload", files={"file": ("clip.mp4", f, "video/mp4")})
        assert uploaded.status_code == 200, uploaded.text
        job = uploaded.json()["job"]
        assert (job["status"], job["filename"]) == ("JOB_STATUS_QUEUED", "clip.mp4")
        assert job["videoSizeBytes"] == str(video.stat().st_size)  # int64 as a string
        assert job["videoSha256"] == hashlib.sha256(video.read_bytes()).hexdigest()

        updates = _watch(http, job["id"])
        assert updates[-1]["status"] == "JOB_STATUS_SUCCEEDED"
        status = http.get("/status", params={"fid": job["id"]}).json()["job"]
        assert status == http.get(f"/v1/jobs/{job['id']}").json()["job"] == updates[-1]

        download = http.get("/download", params={"fid": status["mp3FileId"]})
        assert download.status_code == 200
        assert download.headers["content-type"] == "audio/mpeg"
        assert http.get(f"/v1/mp3s/{status['mp3FileId']}").content == download.content

    client = MeshClient(edge.auth_address, edge.gateway_address)
    client.token = token
    try:
        client.download(status["mp3FileId"], tmp_path / "grpc.mp3")
    finally:
        client.close()
    assert download.content == (tmp_path / "grpc.mp3").read_bytes()
    assert len(download.content) == int(status["mp3SizeBytes"])


def test_seed_register_and_health(edge: Edge) -> None:
    """POST /register with the seed's {"name", "username", "password"}; GET /health."""
    email = f"Seed-{uuid.uuid4().hex[:12]}@Example.com"
    seed = {"name": "Ann Example", "username": email, "password": PASSWORD}
    with edge.http() as http:
        registered = http.post("/register", json=seed)
        assert registered.status_code == 200, registered.text
        user = registered.json()["user"]
        assert (user["email"], user["displayName"]) == (email.lower(), "Ann Example")
        token = http.post("/login", auth=(email, PASSWORD)).json()["token"]
        me = http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert {k: me.json()["user"][k] for k in ("email", "displayName")} == {
            k: user[k] for k in ("email", "displayName")
        }
        assert http.post("/register", json=seed).json() == registered.json()
        not_email = _assert_status(http.post("/register", json={**seed, "username": "ann"}), 400, 3)
        assert "username must be an email address" in not_email
        assert '"username": "you@example.com"' in not_email
        health = http.get("/health")
    assert (health.status_code, health.json()) == (200, HEALTHY)
    assert health.headers["content-type"] == "application/json"
    assert "x-http-code" not in health.headers


def test_raw_body_upload_takes_metadata_from_the_query(edge: Edge, video: Path) -> None:
    content = video.read_bytes()
    with edge.http(edge.new_user()) as http:
        reply = http.post(
            "/v1/videos",
            params={
                "metadata.filename": "v.mp4",
                "metadata.sizeBytes": str(len(content)),
                "metadata.sha256": hashlib.sha256(content).hexdigest(),
            },
            content=content,
            headers={"Content-Type": "video/mp4"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["job"]["filename"] == "v.mp4"
        wrong_size = http.post("/v1/videos", params={"metadata.size_bytes": "5"}, content=content)
    message = _assert_status(wrong_size, 400, 3)
    assert "metadata.size_bytes says 5" in message


def test_login_whoami_and_json_bodies(edge: Edge) -> None:
    email = f"shim-{uuid.uuid4().hex[:12]}@example.com"
    with edge.http() as http:
        registered = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert registered.json()["user"]["email"] == email
        again = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert (again.status_code, again.json()) == (200, registered.json())
        session = http.post("/v1/sessions", json={"email": email, "password": PASSWORD}).json()
        assert session["tokenType"] == "Bearer"
        _assert_status(http.post("/login", auth=(email, "wrong password")), 401, 16)
        _assert_status(http.post("/v1/users", content=b'{"email":'), 400, 3)
        me = http.get("/v1/users/me", headers={"Authorization": f"Bearer {session['token']}"})
    assert me.json()["user"]["email"] == registered.json()["user"]["email"] == email


def test_paging_by_camel_or_snake_case(edge: Edge, video: Path) -> None:
    with edge.http(edge.new_user()) as http:
        ids = [
            http.post("/v1/videos", content=video.read_bytes()).json()["job"]["id"]
            for _ in range(2)
        ]
        first = http.get("/v1/jobs", params={"pageSize": 1}).json()
        second = http.get(
            "/v1/jobs", params={"page_size": 1, "pageToken": first["nextPageToken"]}
        ).json()
        last = http.get("/v1/jobs", params={"page_size": 1, "page_token": second["jobs"][0]["id"]})
    assert [first["jobs"][0]["id"], second["jobs"][0]["id"]] == ids[::-1]  # newest first
    assert second["nextPageToken"] == ""  # the last page
    assert last.json() == {"jobs": [], "nextPageToken": ""}  # defaults printed


def test_errors_are_statuses_with_the_mapped_http_code(edge: Edge, video: Path) -> None:
    owner, stranger = edge.new_user(), edge.new_user()
    with edge.http(owner) as http:
        job = http.post("/v1/videos", content=video.read_bytes()).json()["job"]
        done = _watch(http, job["id"])[-1]
    forged = jwt.encode({"sub": "someone", "exp": time.time() + 60}, "x" * 48, algorithm="HS256")
    with edge.http(stranger) as http:
        _assert_status(http.get("/status", params={"fid": "not-an-id"}), 400, 3)
        _assert_status(http.get("/v1/jobs/not-an-id:watch"), 400, 3)
        _assert_status(http.get("/status", params={"fid": job["id"]}), 404, 5)
        _assert_status(http.get("/download", params={"fid": done["mp3FileId"]}), 404, 5)
        _assert_status(http.get("/v1/jobs", params={"foo": "1"}), 400, 3)
        _assert_status(http.get("/v1/nothing"), 404, 5)
        _assert_status(http.delete("/v1/jobs"), 404, 5)  # wrong method: as an unknown path
    with edge.http() as http:
        _assert_status(http.get("/v1/jobs"), 401, 16)
        _assert_status(http.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"}), 401, 16)
        _assert_status(http.post("/upload", files={"file": ("a.mp4", b"x")}), 401, 16)


def test_oversize_upload_is_413_before_the_body_is_read(edge: Edge) -> None:
    """Only the headers are sent: the answer comes without the edge reading any body,
    so nothing can have reached the gateway."""
    host, port = edge.url.removeprefix("http://").split(":")
    for path in ("/v1/videos?metadata.filename=big.mp4", "/upload"):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer x\r\n"
                f"Content-Type: video/mp4\r\nContent-Length: {TEST_MAX_UPLOAD_BYTES + 1}\r\n\r\n"
            )
            conn.sendall(request.encode())
            answer = b""
            while data := conn.recv(65536):  # the edge closes: the body stays unread
                answer += data
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(body) == {
            "code": 8,
            "message": f"upload is larger than the {TEST_MAX_UPLOAD_BYTES} byte limit",
            "details": [],
        }


def test_job_control_and_the_full_view(edge: Edge, stack: Stack, video: Path) -> None:
    """Cancel, retry, delete and GetJob's full view over REST, the same on both edges;
    the converter is paused while the job is cancelled, so it is still QUEUED then."""
    owner = edge.new_user()
    converter = stack.service_process("converter")
    with edge.http(owner) as http:
        converter.suspend()
        try:
            job = http.post("/v1/videos?metadata.filename=clip.mp4", content=video.read_bytes())
            job_id = job.json()["job"]["id"]
            key = {"Idempotency-Key": str(uuid.uuid4())}
            cancelled = http.post(f"/v1/jobs/{job_id}:cancel", json={})
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["job"]["status"] == "JOB_STATUS_CANCELLED"
            retried = http.post(f"/v1/jobs/{job_id}:retry", json={})
            assert retried.status_code == 200, retried.text
            assert retried.json()["job"]["status"] == "JOB_STATUS_QUEUED"
            first = http.post("/v1/videos", content=video.read_bytes(), headers=key)
            again = http.post("/v1/videos", content=video.read_bytes(), headers=key)
            assert first.status_code == again.status_code == 200, again.text
            assert first.json()["job"]["id"] == again.json()["job"]["id"]
            other = http.post("/v1/videos", content=b"not the same body", headers=key)
            assert "Idempotency-Key" in _assert_status(
                other, 409, grpc.StatusCode.ALREADY_EXISTS.value[0]
            )
        finally:
            converter.resume()
        done = _watch(http, job_id)[-1]
        assert done["status"] == "JOB_STATUS_SUCCEEDED"
        assert "details" not in http.get(f"/v1/jobs/{job_id}").json()["job"]
        job_full = http.get(f"/v1/jobs/{job_id}", params={"view": "JOB_VIEW_FULL"}).json()["job"]
        full = job_full["details"]
        assert full["probe"]["container"].startswith("mov,mp4")
        assert full["ffmpegArgs"][0].endswith(Path(imageio_ffmpeg.get_ffmpeg_exe()).name)
        assert [a["outcome"] for a in full["attemptHistory"]] == ["succeeded"]
        assert float(full["stageTimes"]["convertSeconds"]) > 0
        finished = http.post(f"/v1/jobs/{job_id}:cancel", json={})
        message = _assert_status(finished, 409, grpc.StatusCode.FAILED_PRECONDITION.value[0])
        assert "SUCCEEDED" in message
        deleted = http.delete(f"/v1/jobs/{job_id}")
        assert deleted.status_code == 200 and deleted.json() == {"jobId": job_id}
        gone = http.get(f"/v1/jobs/{job_id}")
        assert "was deleted" in _assert_status(gone, 404, grpc.StatusCode.NOT_FOUND.value[0])
        assert http.post(f"/v1/jobs/{job_id}:retry", json={}).status_code == 404


def test_openapi_and_health(shim: Edge) -> None:
    with shim.http() as http:
        alive = http.get("/healthz")
        ready = http.get("/readyz")
        document = http.get("/openapi.json").json()
    assert alive.status_code == 200 and alive.json() == {"status": "SERVING"}
    assert ready.status_code == 200 and ready.json() == {
        "status": "SERVING",
        "backends": {AUTH: "SERVING", FILES: "SERVING"},
    }
    assert set(document["paths"]) == {
        "/v1/users", "/register", "/v1/sessions", "/login", "/v1/users/me", "/v1/videos", "/upload",
        "/v1/mp3s/{file_id}", "/download", "/v1/jobs/{job_id}", "/status",
        "/v1/jobs/{job_id}:watch", "/v1/jobs", "/health", "/v1/sessions/current", "/logout",
        "/.well-known/jwks.json", "/v1/users/me:changePassword", "/v1/users/me:delete",
        "/v1/presets",
        "/v1/webhooks", "/v1/webhooks/{webhook_id}",
        "/files/", "/files/{upload_id}",
        "/v1/jobs/{job_id}:cancel", "/v1/jobs/{job_id}:retry",
    }  # fmt: skip
    create_webhook = document["paths"]["/v1/webhooks"]["post"]
    assert create_webhook["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/mp3mesh.webhooks.v1.CreateWebhookRequest"
    }
    assert "delete" in document["paths"]["/v1/webhooks/{webhook_id}"]
    assert set(document["paths"]["/v1/jobs/{job_id}"]) == {"get", "delete"}
    get_job = {p["name"] for p in document["paths"]["/v1/jobs/{job_id}"]["get"]["parameters"]}
    assert "view" in get_job
    list_jobs = document["paths"]["/v1/jobs"]["get"]
    assert {p["name"] for p in list_jobs["parameters"]} == {"pageSize", "pageToken"}
    upload_query = {p["name"] for p in document["paths"]["/v1/videos"]["post"]["parameters"]}
    assert "metadata.filename" in upload_query and "httpBody.data" not in upload_query
    # The conversion options, by their REST names and by their field paths.
    assert {"bitrate_kbps", "preset", "cover_at", "metadata.options.bitrateKbps"} <= upload_query
    form = document["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"bitrate_kbps", "loudness_lufs", "file"} <= set(form["schema"]["properties"])
    presets = document["paths"]["/v1/presets"]["get"]["responses"]["200"]
    assert presets["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/mp3mesh.files.v1.ListPresetsResponse"
    }
    schemas = document["components"]["schemas"]
    assert set(_refs(document)) == {f"#/components/schemas/{name}" for name in schemas}
    job = schemas["mp3mesh.files.v1.Job"]["properties"]
    assert job["videoSizeBytes"] == {"type": "string", "format": "int64"}
    assert job["status"] == {"$ref": "#/components/schemas/mp3mesh.files.v1.JobStatus"}


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_shim_memory_stays_flat_while_streaming_90_mb(
    shim: Edge, stack: Stack, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(90):
            f.write(os.urandom(1_000_000))
    size = big.stat().st_size

    def chunks() -> Iterator[bytes]:  # no Content-Length: a chunked body
        with big.open("rb") as f:
            while block := f.read(64 * 1024):
                yield block

    process = stack.service_process("shim")
    with shim.http(shim.new_user(), timeout=300) as http:
        with PeakRss(process) as multipart_rss, big.open("rb") as f:
            multipart = http.post("/upload", files={"file": ("big.bin", f, "video/mp4")})
        with PeakRss(process) as raw_rss:
            raw = http.post("/v1/videos", params={"metadata.filename": "big.bin"}, content=chunks())
    for reply, rss in ((multipart, multipart_rss), (raw, raw_rss)):
        assert reply.status_code == 200, reply.text
        assert reply.json()["job"]["videoSizeBytes"] == str(size)
        growth = rss.peak - rss.before
        print(f"RSS {rss.before >> 20} MiB -> peak {rss.peak >> 20} MiB (+{growth >> 20} MiB)")
        assert growth < 32 * 1024 * 1024


def _answer(reply: httpx.Response) -> tuple[int, str, object]:
    """What a client sees: status, media type, and the body (parsed JSON, one item per
    line, or bytes): what two answers must share even when one was written by Envoy."""
    media_type = reply.headers.get("content-type", "").split(";")[0]
    if media_type == "application/json":
        body: object = [json.loads(line) for line in reply.text.splitlines() if line.strip()]
    else:
        body = reply.content
    return reply.status_code, media_type, body


def _made_by_envoy(reply: httpx.Response) -> bool:
    """An error body Envoy wrote itself (jwt_authn, the transcoder's request checks, the
    local reply mappers): its json_format, keys sorted and a newline after (envoy.yaml.tmpl,
    "Error bodies"). Only these may differ from the shim's answer in bytes, not content."""
    if reply.status_code < 400 or reply.headers.get("content-type") != "application/json":
        return False
    sorted_keys = json.dumps(reply.json(), sort_keys=True, separators=(",", ":"))
    return reply.content == sorted_keys.encode() + b"\n"


def _tus_create(metadata: dict[str, str], length: int = 10) -> dict[str, str]:
    """The headers of a tus creation (POST /files/) declaring ``metadata``."""
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    return {"Tus-Resumable": "1.0.0", "Upload-Length": str(length), "Upload-Metadata": encoded}


def test_a_bad_option_in_tus_metadata_is_400_and_nothing_is_stored(
    edge: Edge, stack: Stack
) -> None:
    """An option in Upload-Metadata is checked as the same option in a query: 400 naming
    the field and what is allowed, and no upload is created."""
    token = edge.new_user()
    uploads = stack.mongo()[stack.env["MONGO_DB"]]["resumable_uploads"]
    with edge.http(token) as http:
        email = http.get("/v1/users/me").json()["user"]["email"]
        cases = {
            "bitrate_kbps": ("100", "bitrate_kbps: 100 is not a LAME constant bitrate; one of 32,"),
            "sample_rate_hz": ("fast", 'sample_rate_hz: invalid value "fast" for type TYPE_INT32'),
            "loudness_lufs": ("-99", "loudness_lufs: -99 is out of range; -70 to -5"),
            "preset": ("nope", "preset: no preset named 'nope'; one of default,"),
        }
        for key, (value, words) in cases.items():
            reply = http.post("/files/", headers=_tus_create({"filename": "a.mp4", key: value}))
            assert words in _assert_status(reply, 400, 3), (key, reply.text)
            assert reply.headers["tus-resumable"] == "1.0.0" and "location" not in reply.headers
            query = http.post(f"/v1/videos?{key}={value}", content=b"abc")
            assert _assert_status(query, 400, 3) == reply.json()["message"]
        assert uploads.count_documents({"owner_email": email}) == 0
        good = http.post("/files/", headers=_tus_create({"bitrate_kbps": "64"}))
        assert good.status_code == 201, good.text
        assert uploads.count_documents({"owner_email": email}) == 1


def test_both_edges_answer_alike(stack: Stack, video: Path) -> None:
    """The same requests, through Envoy and through the shim: the same answers."""
    envoy, shim_edge = _edge(stack, "envoy"), _edge(stack, "shim")
    owner, stranger = envoy.new_user(), envoy.new_user()
    with envoy.http(owner) as http:
        job = http.post("/v1/videos", content=video.read_bytes()).json()["job"]
        done = _watch(http, job["id"])[-1]
        # vbr_quality and loudness_lufs have explicit presence (proto3 optional): set, even
        # to 0, they are printed; unset, left out. Fields without presence are printed at
        # their defaults ("" and 0).
        vbr = http.post("/v1/videos?vbr_quality=0", content=video.read_bytes()).json()["job"]
        vbr_done = _watch(http, vbr["id"])[-1]
        email = http.get("/v1/users/me").json()["user"]["email"]
        hook = http.post("/v1/webhooks", json={"url": "https://example.com/hook"}).json()
        hook_id = hook["webhook"]["id"]
    assert vbr_done["status"] == "JOB_STATUS_SUCCEEDED", vbr_done["error"]
    assert vbr_done["options"] == {
        "preset": "", "bitrateKbps": 0, "vbrQuality": 0, "channels": "", "sampleRateHz": 0,
        "start": "", "end": "", "title": "", "artist": "", "album": "", "coverAt": "",
    }  # fmt: skip
    forged = jwt.encode({"sub": "x", "exp": time.time() + 60}, "y" * 48, algorithm="HS256")
    bearer = {
        "owner": owner, "stranger": stranger, "none": "", "forged": forged,
        "expired": stack.expired_token(), "garbage": "not-a-token",
    }  # fmt: skip
    requests: list[tuple[str, str, str, dict]] = [
        ("GET", f"/status?fid={job['id']}", "owner", {}),
        ("GET", f"/v1/jobs/{job['id']}", "owner", {}),
        ("GET", f"/v1/jobs/{job['id']}:watch", "owner", {}),
        ("GET", f"/v1/jobs/{vbr['id']}", "owner", {}),
        ("GET", f"/v1/jobs/{vbr['id']}?view=JOB_VIEW_FULL", "owner", {}),
        ("GET", f"/v1/jobs/{vbr['id']}:watch", "owner", {}),
        ("GET", f"/status?fid={vbr['id']}", "owner", {}),
        ("GET", "/v1/jobs?pageSize=2", "owner", {}),
        ("GET", "/v1/jobs?pageSize=1", "owner", {}),
        ("GET", "/v1/jobs?page_size=1&page_token=" + job["id"], "owner", {}),
        ("GET", "/v1/users/me", "owner", {}),
        ("GET", f"/download?fid={done['mp3FileId']}", "owner", {}),
        ("GET", f"/v1/mp3s/{done['mp3FileId']}", "owner", {}),
        ("GET", f"/status?fid={job['id']}", "stranger", {}),
        ("GET", f"/download?fid={done['mp3FileId']}", "stranger", {}),
        ("GET", f"/v1/jobs/{job['id']}:watch", "stranger", {}),
        ("GET", "/status?fid=not-an-id", "owner", {}),
        ("GET", "/download?fid=123", "owner", {}),
        ("GET", f"/download?fid={done['mp3FileId']}", "none", {}),
        ("GET", f"/download?fid={done['mp3FileId']}&readOffset=5", "owner", {}),
        ("GET", f"/v1/mp3s/{done['mp3FileId']}", "forged", {}),
        *(
            ("GET", f"{path}", "owner", {"headers": headers})
            for path in (f"/download?fid={done['mp3FileId']}", f"/v1/mp3s/{done['mp3FileId']}")
            for headers in (
                {"range": "bytes=0-99"},
                {"range": "bytes=100-"},
                {"range": "bytes=-100"},
                {"range": "bytes=99999999-"},
                {"range": "bytes=0-1,5-9"},
                {"range": "bytes=0-9", "if-range": '"stale"'},
                {"if-none-match": '"stale"'},
            )
        ),
        ("GET", "/v1/jobs?pageToken=zzz", "owner", {}),
        ("GET", "/v1/jobs?pageSize=-1", "owner", {}),
        ("GET", f"/status?fid={job['id']}", "none", {}),
        ("GET", f"/status?fid={job['id']}", "forged", {}),
        ("GET", f"/status?fid={job['id']}", "expired", {}),
        ("GET", f"/status?fid={job['id']}", "garbage", {}),
        ("GET", "/no/such/path", "owner", {}),
        ("GET", "/login", "owner", {}),
        ("DELETE", f"/v1/jobs/{job['id']}", "stranger", {}),
        ("POST", f"/v1/jobs/{job['id']}:cancel", "stranger", {"json": {}}),
        ("POST", f"/v1/jobs/{job['id']}:retry", "stranger", {"json": {}}),
        ("POST", f"/v1/jobs/{job['id']}:cancel", "owner", {"json": {}}),
        ("POST", f"/v1/jobs/{job['id']}:retry", "owner", {}),
        ("POST", "/v1/jobs/not-an-id:cancel", "owner", {"json": {}}),
        ("DELETE", "/v1/jobs/not-an-id", "owner", {}),
        ("DELETE", f"/v1/jobs/{job['id']}", "none", {}),
        ("GET", f"/v1/jobs/{job['id']}?view=JOB_VIEW_FULL", "owner", {}),
        ("GET", f"/v1/jobs/{job['id']}?view=FULL", "owner", {}),  # 400 on both: enum names
        ("GET", f"/v1/jobs/{job['id']}?view=2", "owner", {}),
        ("GET", f"/status?fid={job['id']}&view=JOB_VIEW_FULL", "owner", {}),
        ("GET", f"/v1/jobs/{job['id']}?view=NO_SUCH_VIEW", "owner", {}),
        ("GET", f"/status?fid={job['id']}&bogus=1", "owner", {}),
        ("POST", "/v1/videos?metadata.filename=empty.mp4", "owner", {"content": b""}),
        ("POST", "/v1/videos?metadata.sizeBytes=5", "owner", {"content": b"abc"}),
        ("POST", "/upload", "none", {"files": {"file": ("a.mp4", b"abc", "video/mp4")}}),
        ("POST", "/v1/users", "none", {"json": {"email": email, "password": PASSWORD}}),
        ("POST", "/v1/users", "none", {"json": {"email": "not-an-email", "password": PASSWORD}}),
        ("POST", "/v1/users", "none", {"json": {"email": "short@example.com", "password": "x"}}),
        ("POST", "/v1/sessions", "none", {"json": {"email": email, "password": "wrong password"}}),
        ("POST", "/login", "none", {"auth": (email, "wrong password")}),
        ("POST", "/login", "none", {"auth": ("nobody@example.com", PASSWORD)}),
        ("POST", "/login", "none", {}),
        (
            "POST",
            "/register",
            "none",
            {"json": {"name": "A", "username": email, "password": PASSWORD}},
        ),
        (
            "POST",
            "/register",
            "none",
            {"json": {"name": "A", "username": "ann", "password": PASSWORD}},
        ),
        (
            "POST",
            "/register",
            "none",
            {"json": {"email": email, "username": "b@example.com", "password": PASSWORD}},
        ),
        (
            "POST",
            "/register",
            "none",
            {"json": {"name": "A\u0007", "username": "c@example.com", "password": PASSWORD}},
        ),
        ("GET", "/health", "none", {}),
        ("GET", "/health?bogus=1", "none", {}),
        # Conversion options and presets (docs/options.md): refused before a byte is kept.
        ("GET", "/v1/presets", "owner", {}),
        ("GET", "/v1/presets", "none", {}),
        ("GET", "/v1/presets?bogus=1", "owner", {}),
        ("POST", "/v1/videos?bitrate_kbps=100", "owner", {"content": b"abc"}),
        ("POST", "/upload?vbr_quality=12&metadata.filename=a.mp4", "owner", {"content": b"abc"}),
        ("POST", "/v1/videos?channels=quad", "owner", {"content": b"abc"}),
        ("POST", "/v1/videos?sample_rate_hz=fast", "owner", {"content": b"abc"}),
        ("POST", "/v1/videos?metadata.options.sampleRateHz=8000", "owner", {"content": b"abc"}),
        ("POST", "/v1/videos?start=10&end=5", "owner", {"content": b"abc"}),
        ("POST", "/upload?loudness_lufs=-99", "owner", {"content": b"abc"}),
        ("POST", "/upload?preset=nope", "owner", {"content": b"abc"}),
        ("POST", "/upload?bitrate_kbps=64&vbr_quality=0", "owner", {"content": b"abc"}),
        ("POST", "/upload?Bitrate_kbps=64", "owner", {"content": b"abc"}),
        (
            "POST",
            "/upload?bitrate_kbps=64",
            "owner",
            {"data": {"cover_at": "later"}, "files": {"file": ("a.mp4", b"abc", "video/mp4")}},
        ),
        # The same options as tus Upload-Metadata (POST /files/): refused before an upload
        # is created.
        *(
            ("POST", "/files/", "owner", {"headers": _tus_create(metadata)})
            for metadata in (
                {"bitrate_kbps": "100"},
                {"bitrate_kbps": "fast"},
                {"filename": "a.mp4", "channels": "quad", "note": "x"},
                {"start": "10", "end": "5"},
                {"preset": "nope"},
                {"bitrate_kbps": "64", "vbr_quality": "0"},
            )
        ),
        ("POST", "/files/", "none", {"headers": _tus_create({"bitrate_kbps": "100"})}),
        ("GET", "/v1/webhooks", "owner", {}),
        ("GET", "/v1/webhooks", "stranger", {}),
        ("GET", "/v1/webhooks", "none", {}),
        ("GET", "/v1/webhooks", "forged", {}),
        ("GET", "/v1/webhooks?bogus=1", "owner", {}),
        ("POST", "/v1/webhooks", "owner", {"json": {"url": "ftp://example.com/x"}}),
        ("POST", "/v1/webhooks", "owner", {"json": {"url": "https://x.example/" + "a" * 3000}}),
        ("POST", "/v1/webhooks", "owner", {"json": {"url": "https://user:pw@example.com/"}}),
        (
            "POST",
            "/v1/webhooks",
            "owner",
            {"json": {"url": "https://example.com", "events": ["x"]}},
        ),
        ("POST", "/v1/webhooks", "owner", {"json": {}}),
        ("POST", "/v1/webhooks", "expired", {"json": {"url": "https://example.com/"}}),
        ("DELETE", f"/v1/webhooks/{hook_id}", "stranger", {}),
        ("DELETE", "/v1/webhooks/not-an-id", "owner", {}),
        ("DELETE", f"/v1/webhooks/{'0' * 24}", "owner", {}),
        ("DELETE", f"/v1/webhooks/{hook_id}", "none", {}),
        ("PUT", f"/v1/webhooks/{hook_id}", "owner", {}),
    ]
    differences = []
    for method, path, who, kwargs in requests:
        replies = []
        for e in (envoy, shim_edge):
            with e.http(bearer[who]) as http:
                replies.append(http.request(method, path, **kwargs))
        answers = [_answer(reply) for reply in replies]
        if not _made_by_envoy(replies[0]):
            # Transcoded answers, successes and gRPC errors alike: the same bytes.
            answers = [
                (*answer[:2], reply.content) for answer, reply in zip(answers, replies, strict=True)
            ]
        if answers[0] != answers[1]:
            differences.append((method, path, who, answers))
        assert answers[0][0] != 503, (method, path, answers[0])
    assert not differences, "\n".join(map(str, differences))


@pytest.fixture(scope="module")
def video_100mb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video over 100 MB (720p noise at 21 Mb/s, with a tone), made in about 7 s."""
    path = make_video(
        tmp_path_factory.mktemp("big") / "big.mp4", 40, size="1280x720", bitrate="21M", noise=True
    )
    assert path.stat().st_size > 100_000_000
    return path


@pytest.mark.parametrize(
    ("edge_name", "how"),
    [("envoy", "raw body"), ("shim", "multipart")],
    ids=["envoy-raw", "shim-multipart"],
)
def test_100_mb_upload_is_converted_with_flat_gateway_memory(
    stack: Stack, video_100mb: Path, edge_name: str, how: str
) -> None:
    e = _edge(stack, edge_name)
    size = video_100mb.stat().st_size
    with e.http(e.new_user(), timeout=600) as http, video_100mb.open("rb") as f:
        with PeakRss(stack.service_process("gateway")) as rss:
            if how == "raw body":
                reply = http.post(
                    "/v1/videos",
                    params={"metadata.filename": "big.mp4"},
                    content=f,
                    headers={"Content-Type": "video/mp4", "Content-Length": str(size)},
                )
            else:
                reply = http.post("/upload", files={"file": ("big.mp4", f, "video/mp4")})
        assert reply.status_code == 200, reply.text
        job = reply.json()["job"]
        assert job["videoSizeBytes"] == str(size)
        done = _watch(http, job["id"])[-1]
        assert done["status"] == "JOB_STATUS_SUCCEEDED", done["error"]
        mp3 = http.get("/download", params={"fid": done["mp3FileId"]})
    assert len(mp3.content) == int(done["mp3SizeBytes"]) and abs(done["durationSeconds"] - 40) < 0.2
    print(f"{edge_name}: gateway RSS {rss.before >> 20} -> {rss.peak >> 20} MiB, {size >> 20} MiB")
    assert rss.growth < 32 * 1024 * 1024, f"gateway grew {rss.growth >> 20} MiB"


def _health(url: str) -> tuple[int, str, object]:
    return _answer(httpx.get(f"{url}/health", timeout=30))


def _both_health(
    mesh_urls: tuple[str, str], expected: tuple[int, dict], timeout: float = 60
) -> None:
    """Wait until both edges answer ``expected`` to GET /health; then they must agree."""
    status, body = expected
    deadline = time.monotonic() + timeout
    while True:
        answers = [_health(url) for url in mesh_urls]
        if all(a == (status, "application/json", [body]) for a in answers):
            return
        assert time.monotonic() < deadline, f"expected {expected}, got {answers}"
        time.sleep(0.5)


def test_mesh_health_map_goes_sorted_on_the_wire(stack: Stack) -> None:
    """Envoy prints a map's entries in the order they come on the wire, the shim sorted by
    key: the gateway sends them sorted, or GET /health's bytes would differ between the
    edges by the luck of each gateway start (upb writes maps in a per-process hash order)."""
    with grpc.insecure_channel(stack.gateway_address) as channel:
        get_mesh_health = channel.unary_unary("/mp3mesh.health.v1.MeshHealthService/GetMeshHealth")
        raw = get_mesh_health(b"", timeout=60)
    reply = health_pb2.GetMeshHealthResponse.FromString(raw)
    assert set(reply.services) == {AUTH, FILES}
    assert raw == reply.SerializeToString(deterministic=True)


def _probe_codes(mesh_urls: tuple[str, str], expected: dict[str, int], timeout: float = 60) -> None:
    """Wait until both edges answer their probes (/healthz, /readyz) with ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        answers = [
            {path: httpx.get(f"{url}{path}", timeout=10).status_code for path in expected}
            for url in mesh_urls
        ]
        if all(a == expected for a in answers):
            return
        assert time.monotonic() < deadline, f"expected {expected} at both edges, got {answers}"
        time.sleep(0.5)


def test_health_is_503_with_the_same_body_when_a_service_is_stopped(tmp_path: Path) -> None:
    """Envoy and the shim in front of auth and the gateway, each its own process: GET /health
    is 200 while both serve, and 503 with the same shape when one is really stopped. The
    edges' own probes answer alike too: /readyz follows auth and the gateway, /healthz
    (what Kubernetes probes) stays 200, so an edge is neither dropped nor restarted when a
    backend is down (with auth down, reads go on: tokens are checked at the edge)."""
    services = ("mongo", "auth", "gateway", "shim", "envoy")
    up = {"/healthz": 200, "/readyz": 200}
    backend_down = {"/healthz": 200, "/readyz": 503}
    with service_stack(tmp_path, services) as mesh:
        urls = (mesh.envoy_url, mesh.shim_url)
        _both_health(urls, (200, HEALTHY))
        _probe_codes(urls, up)
        mesh.stop("auth")
        auth_down = {"status": "unhealthy", "services": {AUTH: "UNAVAILABLE", FILES: "SERVING"}}
        _both_health(urls, (503, auth_down))
        _probe_codes(urls, backend_down)
        mesh.start("auth")
        _both_health(urls, (200, HEALTHY))
        _probe_codes(urls, up)
        mesh.stop("gateway")
        _both_health(urls, (503, envoy_renderer().GATEWAY_UNREACHABLE_HEALTH))
        _probe_codes(urls, backend_down)
        mesh.start("gateway")
        _both_health(urls, (200, HEALTHY))
        _probe_codes(urls, up)


def test_jwks_is_public_keys_only_the_same_at_both_edges_and_cacheable(
    edge: Edge, stack: Stack
) -> None:
    """GET /.well-known/jwks.json: the key auth signs with, no private part, no token
    needed, with Cache-Control; a token from Login verifies with it alone."""
    with edge.http() as http:
        reply = http.get("/.well-known/jwks.json")
        envoy = httpx.get(f"{stack.envoy_url}/.well-known/jwks.json", timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "public, max-age=300"
    jwks = reply.json()
    assert jwks == envoy.json(), "both edges publish the same document"
    (key,) = jwks["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert key["kid"] == key_id(stack.signing_key.public_key())
    token = edge.new_user()
    assert TokenVerifier(keys_from_jwks(jwks["keys"])).verify(token).email.startswith("rest-")


def _bad_tokens(stack: Stack) -> dict[str, str]:
    """Tokens every edge must refuse with 401, by what is wrong with them."""
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()), "email": "x@example.com", "iat": now - 60, "exp": now + 300,
        "iss": "mp3mesh-auth", "aud": "mp3mesh", "jti": uuid.uuid4().hex,
    }  # fmt: skip
    public = stack.signing_key.public_key()
    kid = key_id(public)
    raw_public = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "forged": sign_token(claims, Ed25519PrivateKey.generate(), kid=kid),
        "unknown key": sign_token(claims, Ed25519PrivateKey.generate()),
        "expired": sign_token({**claims, "iat": now - 3600, "exp": now - 120}, stack.signing_key),
        "wrong audience": sign_token({**claims, "aud": "someone-else"}, stack.signing_key),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": kid}),
        "HS256 keyed with the public key": jwt.encode(
            claims, raw_public, algorithm="HS256", headers={"kid": kid}
        ),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/users/me"])
def test_bad_tokens_get_the_same_401_at_both_edges(stack: Stack, path: str) -> None:
    """Envoy refuses them itself (jwt_authn), the shim through the services: the same
    status JSON either way."""
    for case, token in _bad_tokens(stack).items():
        bodies = {}
        for url in (stack.envoy_url, stack.shim_url):
            reply = httpx.get(
                f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            print(case, url, reply.status_code, reply.text)
            bodies[url] = reply.json()
        assert bodies[stack.envoy_url] == bodies[stack.shim_url], case


def test_bad_tokens_get_the_same_status_over_grpc_through_envoy_and_direct(stack: Stack) -> None:
    """Native gRPC through Envoy (what the CLI uses) is refused by jwt_authn with the
    status and message the gateway gives on its own."""
    answers: dict[str, dict[str, tuple[grpc.StatusCode, str]]] = {}
    for name, address in (("envoy", f"127.0.0.1:{stack.env['ENVOY_PORT']}"),
                          ("gateway", stack.gateway_address)):  # fmt: skip
        with grpc.insecure_channel(address) as channel:
            files = files_pb2_grpc.FileServiceStub(channel)
            answers[name] = {}
            for case, token in _bad_tokens(stack).items():
                with pytest.raises(grpc.RpcError) as exc:
                    files.ListJobs(
                        files_pb2.ListJobsRequest(),
                        metadata=(("authorization", f"Bearer {token}"),),
                        timeout=60,
                    )
                answers[name][case] = (exc.value.code(), exc.value.details())  # type: ignore[attr-defined]
    assert answers["envoy"] == answers["gateway"]
    assert {code for code, _ in answers["envoy"].values()} == {grpc.StatusCode.UNAUTHENTICATED}


def test_internal_auth_methods_are_not_routed_by_envoy(stack: Stack) -> None:
    """ValidateToken and ListRevocations serve the mesh's verifiers, never the edge."""
    with grpc.insecure_channel(f"127.0.0.1:{stack.env['ENVOY_PORT']}") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        for call, request in (
            (auth.ValidateToken, auth_pb2.ValidateTokenRequest(token="x")),
            (auth.ListRevocations, auth_pb2.ListRevocationsRequest()),
        ):
            with pytest.raises(grpc.RpcError) as exc:
                call(request, timeout=60)
            assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_ranged_downloads(edge: Edge, video: Path) -> None:
    """Range (a-b, a-, -n), 416, If-None-Match and If-Range, with their headers."""
    token = edge.new_user()
    with edge.http(token) as http:
        job = http.post("/v1/videos", content=video.read_bytes()).json()["job"]
        mp3_id = _watch(http, job["id"])[-1]["mp3FileId"]
        for path, params in (("/download", {"fid": mp3_id}), (f"/v1/mp3s/{mp3_id}", {})):
            whole = http.get(path, params=params)
            assert whole.status_code == 200
            size, etag = len(whole.content), whole.headers["etag"]
            assert whole.headers["accept-ranges"] == "bytes"
            assert whole.headers["content-length"] == str(size)
            assert etag.startswith('"') and etag.endswith('"')

            def get(headers: dict[str, str], p: str = path, q: dict = params) -> httpx.Response:
                return http.get(p, params=q, headers=headers)

            for header, start, stop in (
                ("bytes=0-99", 0, 100),
                (f"bytes={size // 2}-", size // 2, size),
                ("bytes=-100", size - 100, size),
                (f"bytes=10-{size * 3}", 10, size),
                (f"bytes={size - 1}-{size - 1}", size - 1, size),
            ):
                part = get({"range": header})
                assert part.status_code == 206, (header, part.text)
                assert part.content == whole.content[start:stop], header
                assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
                assert part.headers["content-length"] == str(stop - start)
                assert part.headers["content-type"] == "audio/mpeg"
                assert (part.headers["etag"], part.headers["accept-ranges"]) == (etag, "bytes")

            for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
                refused = get({"range": header})
                message = _assert_status(refused, 416, 11)
                assert "range" in message and str(size) in message
                assert refused.headers["content-range"] == f"bytes */{size}"

            # Several ranges, or a malformed one: the whole file.
            for header in ("bytes=0-1,5-9", "bytes=9-1", "pages=1-2"):
                assert get({"range": header}).content == whole.content, header

            not_modified = get({"if-none-match": etag})
            assert (not_modified.status_code, not_modified.content) == (304, b"")
            assert not_modified.headers["etag"] == etag
            assert get({"if-none-match": f'"other", W/{etag}'}).status_code == 304
            assert get({"if-none-match": '"other"'}).status_code == 200

            same = get({"range": "bytes=0-9", "if-range": etag})
            assert (same.status_code, same.content) == (206, whole.content[:10])
            stale = get({"range": "bytes=0-9", "if-range": '"other"'})
            assert (stale.status_code, stale.content) == (200, whole.content)
            # Over HTTP the part is asked with Range, not with Download's request fields.
            asked = http.get(path, params={**params, "readOffset": "5"})
            assert "Range" in _assert_status(asked, 400, 3)
    with edge.http() as http:
        _assert_status(
            http.get("/download", params={"fid": mp3_id}, headers={"range": "bytes=0-1"}), 401, 16
        )


def test_curl_resumes_a_cut_download(edge: Edge, video: Path, tmp_path: Path) -> None:
    """A download cut short (curl --range) is completed by ``curl -C -``, byte for byte."""
    token = edge.new_user()
    with edge.http(token) as http:
        job = http.post("/v1/videos", content=video.read_bytes()).json()["job"]
        mp3_id = _watch(http, job["id"])[-1]["mp3FileId"]
        whole = http.get("/download", params={"fid": mp3_id}).content
    url = f"{edge.url}/download?fid={mp3_id}"
    auth = ["-H", f"Authorization: Bearer {token}"]
    out = tmp_path / "cut.mp3"
    cut = len(whole) // 3
    subprocess.run(
        ["curl", "-sS", "--fail", *auth, "--range", f"0-{cut - 1}", "-o", str(out), url],
        check=True,
    )
    assert out.read_bytes() == whole[:cut]
    resumed = subprocess.run(
        ["curl", "-sS", "--fail", "-C", "-", *auth, "-o", str(out), "-w", "%{http_code}", url],
        check=True,
        capture_output=True,
        text=True,
    )
    assert resumed.stdout == "206"
    assert out.read_bytes() == whole
