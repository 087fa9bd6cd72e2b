"""The REST shim against a real mesh: the Procfile under honcho on free ports, plus
the shim (``python -m gateway.shim``) in front of it, spoken to over real HTTP.

The shim is the one the Procfile runs in the shared ``stack`` fixture (conftest.py).
"""

from __future__ import annotations

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

import httpx
import imageio_ffmpeg
import jwt
import psutil
import pytest

from meshcore.client import MeshClient
from tests.conftest import PASSWORD, TEST_MAX_UPLOAD_BYTES, PeakRss, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
STATUS_KEYS = {"code", "message", "details"}


@dataclass
class ShimMesh:
    url: str
    auth_address: str
    gateway_address: str
    shim: psutil.Process

    def http(self, token: str = "", timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def new_user(self) -> str:
        """Register and log in over REST; the bearer token."""
        email = f"shim-{uuid.uuid4().hex[:12]}@example.com"
        with self.http() as http:
            assert http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
            reply = http.post("/login", auth=(email, PASSWORD))
        assert reply.status_code == 200, reply.text
        return reply.json()["token"]


@pytest.fixture(scope="module")
def shim_mesh(stack: Stack) -> ShimMesh:
    """The shim the Procfile runs in front of the test stack."""
    return ShimMesh(
        stack.shim_url,
        stack.auth_address,
        stack.gateway_address,
        stack.service_process("gateway.shim"),
    )


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


def test_seed_commands_end_to_end(shim_mesh: ShimMesh, video: Path, tmp_path: Path) -> None:
    """login (curl -u), upload (-F file=@), status?fid=, download?fid=, as the seeds do."""
    token = shim_mesh.new_user()
    with shim_mesh.http(token) as http, video.open("rb") as f:
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

    client = MeshClient(shim_mesh.auth_address, shim_mesh.gateway_address)
    client.token = token
    try:
        client.download(status["mp3FileId"], tmp_path / "grpc.mp3")
    finally:
        client.close()
    assert download.content == (tmp_path / "grpc.mp3").read_bytes()
    assert len(download.content) == int(status["mp3SizeBytes"])


def test_raw_body_upload_takes_metadata_from_the_query(shim_mesh: ShimMesh, video: Path) -> None:
    content = video.read_bytes()
    with shim_mesh.http(shim_mesh.new_user()) as http:
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


def test_login_whoami_and_json_bodies(shim_mesh: ShimMesh) -> None:
    email = f"shim-{uuid.uuid4().hex[:12]}@example.com"
    with shim_mesh.http() as http:
        registered = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        assert registered.json()["user"]["email"] == email
        again = http.post("/v1/users", json={"email": email, "password": PASSWORD})
        _assert_status(again, 409, 6)
        session = http.post("/v1/sessions", json={"email": email, "password": PASSWORD}).json()
        assert session["tokenType"] == "Bearer"
        _assert_status(http.post("/login", auth=(email, "wrong password")), 401, 16)
        _assert_status(http.post("/v1/users", content=b'{"email":'), 400, 3)
        me = http.get("/v1/users/me", headers={"Authorization": f"Bearer {session['token']}"})
    assert me.json()["user"] == registered.json()["user"]


def test_paging_by_camel_or_snake_case(shim_mesh: ShimMesh, video: Path) -> None:
    with shim_mesh.http(shim_mesh.new_user()) as http:
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


def test_errors_are_statuses_with_the_mapped_http_code(shim_mesh: ShimMesh, video: Path) -> None:
    owner, stranger = shim_mesh.new_user(), shim_mesh.new_user()
    with shim_mesh.http(owner) as http:
        job = http.post("/v1/videos", content=video.read_bytes()).json()["job"]
        done = _watch(http, job["id"])[-1]
    forged = jwt.encode({"sub": "someone", "exp": time.time() + 60}, "x" * 48, algorithm="HS256")
    with shim_mesh.http(stranger) as http:
        _assert_status(http.get("/status", params={"fid": "not-an-id"}), 400, 3)
        _assert_status(http.get("/v1/jobs/not-an-id:watch"), 400, 3)
        _assert_status(http.get("/status", params={"fid": job["id"]}), 404, 5)
        _assert_status(http.get("/download", params={"fid": done["mp3FileId"]}), 404, 5)
        _assert_status(http.get("/v1/jobs", params={"foo": "1"}), 400, 3)
        _assert_status(http.get("/v1/nothing"), 404, 5)
        wrong_method = http.delete("/v1/jobs")
        assert wrong_method.headers["allow"] == "GET"
        _assert_status(wrong_method, 405, 12)
    with shim_mesh.http() as http:
        _assert_status(http.get("/v1/jobs"), 401, 16)
        _assert_status(http.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"}), 401, 16)
        _assert_status(http.post("/upload", files={"file": ("a.mp4", b"x")}), 401, 16)


def test_oversize_upload_is_413_before_the_body_is_read(shim_mesh: ShimMesh) -> None:
    """Only the headers are sent: the answer comes without the shim reading any body,
    so nothing can have reached the gateway."""
    host, port = shim_mesh.url.removeprefix("http://").split(":")
    for path in ("/v1/videos?metadata.filename=big.mp4", "/upload"):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer x\r\n"
                f"Content-Type: video/mp4\r\nContent-Length: {TEST_MAX_UPLOAD_BYTES + 1}\r\n\r\n"
            )
            conn.sendall(request.encode())
            answer = b""
            while data := conn.recv(65536):  # the shim closes: the body stays unread
                answer += data
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(body) == {
            "code": 8,
            "message": f"upload is larger than the {TEST_MAX_UPLOAD_BYTES} byte limit",
            "details": [],
        }


def test_openapi_and_health(shim_mesh: ShimMesh) -> None:
    with shim_mesh.http() as http:
        health = http.get("/healthz")
        document = http.get("/openapi.json").json()
    assert health.status_code == 200 and health.json()["status"] == "SERVING"
    assert set(document["paths"]) == {
        "/v1/users", "/v1/sessions", "/login", "/v1/users/me", "/v1/videos", "/upload",
        "/v1/mp3s/{file_id}", "/download", "/v1/jobs/{job_id}", "/status",
        "/v1/jobs/{job_id}:watch", "/v1/jobs",
    }  # fmt: skip
    list_jobs = document["paths"]["/v1/jobs"]["get"]
    assert {p["name"] for p in list_jobs["parameters"]} == {"pageSize", "pageToken"}
    upload_query = {p["name"] for p in document["paths"]["/v1/videos"]["post"]["parameters"]}
    assert "metadata.filename" in upload_query and "httpBody.data" not in upload_query
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


def test_memory_stays_flat_while_streaming_90_mb(shim_mesh: ShimMesh, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(90):  # under the test stack's 96 MiB upload limit
            f.write(os.urandom(1_000_000))
    size = big.stat().st_size

    def chunks() -> Iterator[bytes]:  # no Content-Length: a chunked body
        with big.open("rb") as f:
            while block := f.read(64 * 1024):
                yield block

    with shim_mesh.http(shim_mesh.new_user(), timeout=300) as http:
        with PeakRss(shim_mesh.shim) as multipart_rss, big.open("rb") as f:
            multipart = http.post("/upload", files={"file": ("big.bin", f, "video/mp4")})
        with PeakRss(shim_mesh.shim) as raw_rss:
            raw = http.post("/v1/videos", params={"metadata.filename": "big.bin"}, content=chunks())
    for reply, rss in ((multipart, multipart_rss), (raw, raw_rss)):
        assert reply.status_code == 200, reply.text
        assert reply.json()["job"]["videoSizeBytes"] == str(size)
        growth = rss.peak - rss.before
        print(f"RSS {rss.before >> 20} MiB -> peak {rss.peak >> 20} MiB (+{growth >> 20} MiB)")
        assert growth < 32 * 1024 * 1024
