"""Resumable uploads (tus 1.0 at /files/) on the real stack, through both edges.

The real Python tus client (tuspy) uploads part of a video, a PATCH is cut mid-body by
closing its socket, and a new tuspy uploader resumes from the offset the server reports;
the job converts and the MP3 is checked with ffprobe. The protocol's refusals are checked
on both edges, and compared between them; an expired upload leaves no GridFS chunks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from bson import ObjectId
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from devstack import PASSWORD, TEST_MAX_UPLOAD_BYTES, Stack, make_video, wait_for
from mp3mesh.gateway.resumable import PART_BYTES
from tests.e2e.test_options import probe
from tests.helpers import ffprobe

pytestmark = pytest.mark.e2e

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
STATUS_KEYS = {"code", "message", "details"}


@dataclass
class Edge:
    name: str
    url: str

    def http(self, token: str = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def new_user(self) -> str:
        email = f"tus-{uuid.uuid4().hex[:12]}@example.com"
        with self.http() as http:
            assert http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
            reply = http.post("/login", auth=(email, PASSWORD))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"])


def _edge(stack: Stack, name: str) -> Edge:
    return Edge(name, stack.envoy_url if name == "envoy" else stack.shim_url)


@pytest.fixture(scope="module", params=["envoy", "shim"])
def edge(request: pytest.FixtureRequest, stack: Stack) -> Edge:
    return _edge(stack, request.param)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 10 MB: several upload parts and tus chunks."""
    return make_video(tmp_path_factory.mktemp("tus") / "clip.mp4", 16, bitrate="5M", noise=True)


def _status(reply: httpx.Response, http_status: int, grpc_code: int) -> str:
    assert reply.status_code == http_status, (reply.status_code, reply.text)
    assert reply.headers["tus-resumable"] == "1.0.0"
    body = reply.json()
    assert set(body) == STATUS_KEYS and body["code"] == grpc_code, body
    return str(body["message"])


def _create(http: httpx.Client, length: int, metadata: str = "") -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = metadata
    reply = http.post("/files/", headers=headers)
    assert reply.status_code == 201, reply.text
    assert reply.headers["location"].startswith("/files/")
    assert reply.headers["upload-expires"].endswith("GMT")
    return str(reply.headers["location"])


def _offset(http: httpx.Client, location: str) -> int:
    reply = http.head(location, headers=TUS)
    assert reply.status_code == 200, reply.status_code
    assert reply.headers["cache-control"] == "no-store"
    return int(reply.headers["upload-offset"])


def _cut_patch(
    url: str, location: str, token: str, offset: int, data: bytes, stored: Callable[[], bool]
) -> None:
    """A PATCH declaring all of ``data``, sent until ``stored()`` (the server committed
    part of it while the request is still open), then cut: the connection is reset."""
    parts = urlsplit(url)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {len(data) + 1}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + data)
        wait_for(stored, "part of the PATCH committed while it is open")
        # Reset, not closed: the server sees the connection drop mid-body.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _json(text: str) -> object:
    """A body, parsed (Envoy's own answers order keys differently); None if empty."""
    return json.loads(text) if text else None


def _converted(http: httpx.Client, job_id: str, what: str) -> dict:
    """The job, once it succeeded (a failure fails the test at once)."""

    def finished() -> bool:
        status = http.get(f"/v1/jobs/{job_id}").json()["job"]["status"]
        assert status != "JOB_STATUS_FAILED"
        return bool(status == "JOB_STATUS_SUCCEEDED")

    wait_for(finished, what, timeout=180)
    return dict(http.get(f"/v1/jobs/{job_id}").json()["job"])


def _metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def test_tuspy_resumes_after_a_cut_patch(
    edge: Edge, stack: Stack, video: Path, tmp_path: Path
) -> None:
    """tuspy sends the first part (two checksummed PATCHes), a PATCH is cut mid-body, and
    a new tuspy uploader resumes at the offset the server reports: past the cut PATCH's
    first byte, since what reached the gateway was committed. The job converts."""
    token = edge.new_user()
    data = video.read_bytes()
    chunk = 1024 * 1024
    client = tus_client.TusClient(
        edge.url + "/files/", headers={"Authorization": f"Bearer {token}"}
    )
    metadata = {"filename": "clip.mp4", "filetype": "video/mp4", "note": "voice"}
    started = time.monotonic()
    first = client.uploader(
        file_path=str(video), chunk_size=chunk, metadata=metadata, upload_checksum=True
    )
    first.upload(stop_at=2 * chunk)
    assert first.offset == 2 * chunk
    location = urlsplit(first.url).path

    upload_id = ObjectId(location.rsplit("/", 1)[1])
    records = stack.mongo()[stack.env["MONGO_DB"]]["resumable_uploads"]

    def record() -> dict:
        return records.find_one({"_id": upload_id}) or {}

    sent = 6 * chunk
    assert len(data) > first.offset + sent
    _cut_patch(
        edge.url,
        location,
        token,
        first.offset,
        data[first.offset : first.offset + sent],
        lambda: record()["committed"] > first.offset,
    )
    wait_for(lambda: record()["writer"] is None, "the cut PATCH ended")
    committed = record()["committed"]
    with edge.http(token) as http:
        assert _offset(http, location) == committed
        head = http.head(location, headers=TUS)
    # What reached the gateway is kept: at least the first part, at most what was sent.
    assert first.offset + PART_BYTES <= committed <= first.offset + sent
    assert "mp3mesh-job-id" not in head.headers
    assert head.headers["upload-length"] == str(len(data))
    pairs = dict(p.split(" ") for p in head.headers["upload-metadata"].split(","))
    assert base64.b64decode(pairs["note"]) == b"voice"

    resumed = client.uploader(file_path=str(video), chunk_size=chunk, url=first.url)
    resume_offset = resumed.offset
    assert resume_offset == committed
    resumed.upload()
    elapsed = time.monotonic() - started
    job_id = resumed.request.response_headers["mp3mesh-job-id"]
    print(f"tus {edge.name}: {len(data)} bytes, cut PATCH at {first.offset} +{sent} sent,"
          f" resumed at {resume_offset}, upload {elapsed:.2f} s")  # fmt: skip

    with edge.http(token) as http:
        assert http.head(location, headers=TUS).headers["mp3mesh-job-id"] == job_id
        job = _converted(http, job_id, "the resumably uploaded video converted")
        assert job["videoSha256"] == hashlib.sha256(data).hexdigest()
        assert job["filename"] == "clip.mp4"
        assert int(job["videoSizeBytes"]) == len(data)
        mp3 = http.get(f"/v1/mp3s/{job['mp3FileId']}")
    assert mp3.status_code == 200
    out = tmp_path / "out.mp3"
    out.write_bytes(mp3.content)
    probe = ffprobe(out)
    assert probe["streams"][0]["codec_name"] == "mp3"
    assert float(probe["format"]["duration"]) == pytest.approx(16, abs=0.5)


def test_tuspy_upload_with_options_metadata_shapes_the_mp3(
    edge: Edge, stack: Stack, tmp_path: Path
) -> None:
    """Options sent by tuspy as Upload-Metadata reach the job and the MP3 (the tone is
    mono, so "stereo" shows the option was applied); HEAD gives the metadata back as sent.
    The same options as a number that is no LAME bitrate: 400, and no upload is created."""
    token = edge.new_user()
    video = make_video(tmp_path / "talk.mp4", 4)
    client = tus_client.TusClient(
        edge.url + "/files/", headers={"Authorization": f"Bearer {token}"}
    )
    asked = {
        "bitrate_kbps": "64",
        "channels": "stereo",
        "sample_rate_hz": "32000",
        "title": "Tus Title, één",
        "artist": "tuspy",
    }
    uploader = client.uploader(
        file_path=str(video), chunk_size=1024 * 1024, metadata={"filename": "talk.mp4", **asked}
    )
    uploader.upload()
    job_id = uploader.request.response_headers["mp3mesh-job-id"]
    with edge.http(token) as http:
        head = http.head(urlsplit(uploader.url).path, headers=TUS)
        echoed = dict(p.split(" ") for p in head.headers["upload-metadata"].split(","))
        assert {k: base64.b64decode(echoed[k]).decode() for k in asked} == asked
        job = _converted(http, job_id, "the video uploaded with options converted")
        # Both edges: fields without presence at their defaults too, the unset proto3
        # optional ones (vbrQuality, loudnessLufs) not at all.
        assert job["options"] == {
            "preset": "",
            "bitrateKbps": 64,
            "channels": "stereo",
            "sampleRateHz": 32000,
            "start": "",
            "end": "",
            "title": "Tus Title, één",
            "artist": "tuspy",
            "album": "",
            "coverAt": "",
        }
        mp3 = http.get(f"/v1/mp3s/{job['mp3FileId']}")
        assert mp3.status_code == 200
        out = tmp_path / "talk.mp3"
        out.write_bytes(mp3.content)
        seen = probe(out)
        print(f"tus {edge.name} options: {seen['bitrate']} b/s, {seen['channels']} channels,"
              f" {seen['rate']} Hz, tags {seen['tags']}")  # fmt: skip
        assert (seen["bitrate"], seen["channels"], seen["rate"]) == (64000, 2, 32000)
        assert seen["tags"]["title"] == "Tus Title, één" and seen["tags"]["artist"] == "tuspy"

        bad = client.uploader(
            file_path=str(video), metadata={"filename": "talk.mp4", "bitrate_kbps": "65"}
        )
        with pytest.raises(TusCommunicationError) as refused:
            bad.upload()
        assert refused.value.status_code == 400
        assert b"bitrate_kbps: 65 is not a LAME constant bitrate" in refused.value.response_content
        # Nothing stored: the user's only upload is the one above.
        records = stack.mongo()[stack.env["MONGO_DB"]]["resumable_uploads"]
        mine = records.find({"owner_email": http.get("/v1/users/me").json()["user"]["email"]})
        assert [str(record["_id"]) for record in mine] == [job_id]


def test_tus_discovery_and_refusals(edge: Edge) -> None:
    """OPTIONS without a token; 401, 412, 400, 413, 409, 415, 460, 404 as tus says."""
    token = edge.new_user()
    with edge.http() as anonymous:
        options = anonymous.options("/files/")
        assert options.status_code == 204
        assert options.headers["tus-version"] == "1.0.0"
        assert set(options.headers["tus-extension"].split(",")) == {
            "creation", "termination", "expiration", "checksum"
        }  # fmt: skip
        assert options.headers["tus-checksum-algorithm"] == "sha1"
        assert options.headers["tus-max-size"] == str(TEST_MAX_UPLOAD_BYTES)
        assert "Upload-Offset" in options.headers["access-control-expose-headers"]
        assert "Mp3mesh-Job-Id" in options.headers["access-control-expose-headers"]
        assert anonymous.post("/files/", headers={**TUS, "Upload-Length": "10"}).status_code == 401
    with edge.http(token) as http:
        reply = http.post("/files/", headers={"Upload-Length": "10"})
        assert "Tus-Resumable" in _status(reply, 412, 9)
        assert reply.headers["tus-version"] == "1.0.0"
        _status(http.post("/files/", headers=TUS), 400, 3)
        too_big = {**TUS, "Upload-Length": str(TEST_MAX_UPLOAD_BYTES + 1)}
        assert "limit" in _status(http.post("/files/", headers=too_big), 413, 8)
        bad_metadata = {**TUS, "Upload-Length": "10", "Upload-Metadata": "filename ???"}
        _status(http.post("/files/", headers=bad_metadata), 400, 3)

        location = _create(http, 10, _metadata(filename="a.mp4"))
        wrong = http.patch(location, headers={**OCTETS, "Upload-Offset": "3"}, content=b"abc")
        assert "0 bytes are committed" in _status(wrong, 409, 10)
        _status(http.patch(location, headers={**TUS, "Upload-Offset": "0"}, content=b"abc"), 415, 3)
        checksum = (
            "sha1 "
            + base64.b64encode(hashlib.sha1(b"xyz", usedforsecurity=False).digest()).decode()
        )
        mismatch = http.patch(
            location,
            headers={**OCTETS, "Upload-Offset": "0", "Upload-Checksum": checksum},
            content=b"abc",
        )
        assert "checksum" in _status(mismatch, 460, 15)
        assert _offset(http, location) == 0
        past = http.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=b"x" * 11)
        _status(past, 413, 11)
        # Someone else's upload does not exist for this user.
        other = edge.new_user()
        with edge.http(other) as stranger:
            assert stranger.head(location, headers=TUS).status_code == 404
        assert http.delete(location, headers=TUS).status_code == 204
        assert http.head(location, headers=TUS).status_code == 404
        gone = http.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=b"abc")
        _status(gone, 404, 5)
        _status(http.delete(location, headers=TUS), 404, 5)
        _status(http.get("/files/"), 404, 5)


def test_a_creation_sent_again_under_its_key_answers_the_same_upload(edge: Edge) -> None:
    """POST /files/ with an Idempotency-Key sent again (its first answer lost): the same
    upload URL, no second upload; the key with another declaration is 409."""
    token = edge.new_user()
    key = {"Idempotency-Key": f"tus-{uuid.uuid4()}"}
    declared = {**TUS, **key, "Upload-Length": "10",
                "Upload-Metadata": _metadata(filename="a.mp4", bitrate_kbps="64")}  # fmt: skip
    with edge.http(token) as http:
        first = http.post("/files/", headers=declared)
        again = http.post("/files/", headers=declared)
        assert first.status_code == again.status_code == 201, (first.text, again.text)
        assert first.headers["location"] == again.headers["location"]
        assert _offset(http, again.headers["location"]) == 0
        other = {**declared, "Upload-Metadata": _metadata(filename="a.mp4", bitrate_kbps="96")}
        assert "already used" in _status(http.post("/files/", headers=other), 409, 6)
        longer = {**declared, "Upload-Length": "11"}
        _status(http.post("/files/", headers=longer), 409, 6)
        fresh = http.post("/files/", headers={**declared, "Idempotency-Key": f"tus-{uuid.uuid4()}"})
        assert fresh.status_code == 201 and fresh.headers["location"] != first.headers["location"]
        # Once the upload is gone (terminated) and made no job, the key opens a new one.
        assert http.delete(first.headers["location"], headers=TUS).status_code == 204
        reopened = http.post("/files/", headers=declared)
        assert reopened.status_code == 201, reopened.text
        assert reopened.headers["location"] != first.headers["location"]


def test_tus_edges_answer_alike(stack: Stack) -> None:
    """The same tus requests to both edges: same status, tus headers and body."""
    answers = {}
    for name in ("envoy", "shim"):
        edge = _edge(stack, name)
        token = edge.new_user()
        with edge.http(token) as http:
            location = _create(http, 5)
            replies = [
                http.options("/files/"),
                http.post("/files/", headers={"Upload-Length": "5"}),
                http.post("/files/", headers={**TUS, "Upload-Length": "x"}),
                http.post("/files/", headers={**TUS, "Upload-Length": str(10**12)}),
                http.patch(location, headers={**OCTETS, "Upload-Offset": "1"}, content=b"a"),
                http.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=b"ab"),
                http.head(location, headers=TUS),
                http.patch(location, headers={**OCTETS, "Upload-Offset": "2"}, content=b"abcdef"),
                http.head("/files/0123456789abcdef01234567", headers=TUS),
                http.delete("/files/not-an-id", headers=TUS),
                http.put(location, headers=TUS),
            ]
            http.delete(location, headers=TUS)
        answers[name] = [
            (
                r.status_code,
                r.headers.get("content-type"),
                _json(r.content.decode().replace(location.rsplit("/", 1)[1], "<id>")),
                {k: r.headers.get(k) for k in ("upload-offset", "tus-version", "tus-resumable")},
            )
            for r in replies
        ]
    assert answers["envoy"] == answers["shim"]


def test_expired_upload_is_removed_with_its_chunks(stack: Stack) -> None:
    """An upload past its expiry is gone at once (404), and housekeeping removes its
    record and every GridFS chunk it stored (a partly filled last chunk included)."""
    edge = _edge(stack, "envoy")
    token = edge.new_user()
    payload = b"v" * (600 * 1024)
    with edge.http(token) as http:
        location = _create(http, 2 * len(payload))
        reply = http.patch(location, headers={**OCTETS, "Upload-Offset": "0"}, content=payload)
        assert reply.status_code == 204, reply.text
        assert reply.headers["upload-offset"] == str(len(payload))
        upload_id = ObjectId(location.rsplit("/", 1)[1])
        db = stack.mongo()[stack.env["MONGO_DB"]]
        record = db["resumable_uploads"].find_one({"_id": upload_id})
        parts = [part["id"] for part in record["parts"]]
        chunks = db["upload_parts.chunks"]
        assert len(parts) == 1 and len(list(chunks.find({"files_id": parts[0]}))) == 3
        db["resumable_uploads"].update_one(
            {"_id": upload_id}, {"$set": {"expires_at": time.time() - 1}}
        )
        assert http.head(location, headers=TUS).status_code == 404
        wait_for(
            lambda: db["resumable_uploads"].find_one({"_id": upload_id}) is None,
            "housekeeping removed the expired upload",
            timeout=60,
        )
    assert chunks.find_one({"files_id": parts[0]}) is None
    assert db["upload_parts.files"].find_one({"_id": parts[0]}) is None
    assert db["videos.chunks"].find_one({"files_id": upload_id}) is None
    assert db["videos.files"].find_one({"_id": upload_id}) is None
