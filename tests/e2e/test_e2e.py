"""The whole mesh over gRPC with the generated stubs: the happy path and every bad input
from the issue, each checked for its status code, its message, and what it leaves behind."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pika
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devstack import (
    AMQP_URL,
    PASSWORD,
    ROOT,
    TEST_MAX_UPLOAD_BYTES,
    PeakRss,
    Stack,
    drop_queues,
    free_port,
    make_video,
    wait_for,
)
from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.cli.client import is_serving, upload_requests
from mp3mesh.core import gridfs_io
from mp3mesh.core.amqp.consumer import decode
from mp3mesh.core.amqp.topology import declare_queues
from mp3mesh.core.tokens import key_id
from mp3mesh.events.v1 import events_pb2
from mp3mesh.files.v1 import files_pb2, files_pb2_grpc
from tests.helpers import ffprobe, sign_token

pytestmark = pytest.mark.e2e


def status_of(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[attr-defined]


def stored_video_ids(stack: Stack) -> set[ObjectId]:
    db = stack.mongo()[stack.env["MONGO_DB"]]
    return {d["_id"] for d in db["videos.files"].find({}, {"_id": 1})}


def discarded_uploads(stack: Stack, user_id: str, expected: int) -> list[ObjectId]:
    """Job (= video file) ids of this user's uploads the gateway logged as discarded (the
    log reaches the file through honcho a moment after the client has its answer)."""
    deadline = time.monotonic() + 30
    while True:
        ids = []
        for line in stack.log.read_text().splitlines():
            _, _, payload = line.partition("| ")
            if '"upload discarded"' in payload and user_id in payload:
                ids.append(ObjectId(json.loads(payload)["job_id"]))
        if len(ids) >= expected or time.monotonic() > deadline:
            return ids
        time.sleep(0.1)


def assert_nothing_kept(stack: Stack, file_ids: list[ObjectId]) -> None:
    """Refusals are answered after the removal; only a removal the store failed is retried
    in the background (seen on a loaded machine), so give that one time before failing."""
    db = stack.mongo()[stack.env["MONGO_DB"]]

    def kept() -> list[ObjectId]:
        return [
            file_id
            for file_id in file_ids
            if db["videos.files"].find_one({"_id": file_id}) is not None
            or db["videos.chunks"].find_one({"files_id": file_id}, {"n": 1}) is not None
        ]

    deadline = time.monotonic() + 120
    while kept() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert kept() == []


def test_video_becomes_mp3_and_email(stack: Stack, media: Path, tmp_path: Path) -> None:
    client, address = stack.new_user()
    job = client.upload(media / "clip.mp4")
    assert job.status == files_pb2.JOB_STATUS_QUEUED
    assert job.video_size_bytes == (media / "clip.mp4").stat().st_size

    updates = list(client.watch(job.id, timeout=120))
    statuses = [u.status for u in updates]
    assert statuses[-1] == files_pb2.JOB_STATUS_SUCCEEDED, updates[-1].error
    assert statuses == sorted(statuses), "status never goes backwards"
    assert all(u.update_time.seconds >= u.create_time.seconds > 0 for u in updates)
    progress = [u.progress_percent for u in updates]
    assert progress == sorted(progress) and progress[-1] == 100
    done = updates[-1]
    assert done.attempts == 1 and done.mp3_file_id and abs(done.duration_seconds - 12) < 0.2

    mp3 = tmp_path / "out.mp3"
    assert client.download(done.mp3_file_id, mp3) == done.mp3_size_bytes
    probe = ffprobe(mp3)
    assert [s["codec_name"] for s in probe["streams"]] == ["mp3"]
    assert abs(float(probe["format"]["duration"]) - 12.0) <= 0.2

    mail = stack.wait_for_mail(job.id)
    assert mail["To"] == address
    assert "ready" in mail["Subject"] and done.mp3_file_id in mail.get_content()
    time.sleep(1)
    assert len(stack.mails(job.id)) == 1, "exactly one email per job"
    assert stack.queue_depth(stack.env["VIDEO_QUEUE"])[0] == 0
    assert stack.queue_depth(stack.env["MP3_QUEUE"])[0] == 0
    assert list(Path(stack.env["WORK_DIR"]).iterdir()) == [], "converter left temp files"

    listed = client.files.ListJobs(files_pb2.ListJobsRequest(), metadata=client.metadata).jobs
    assert [j.id for j in listed] == [job.id]


def test_a_finished_job_expires_and_its_download_says_so(
    stack: Stack, media: Path, tmp_path: Path
) -> None:
    """Retention: the video goes once its MP3 exists; when the job's time is up (here:
    moved into the past) the gateway's sweep deletes the MP3 and Download says why."""
    client, _ = stack.new_user()
    done = client.wait(client.upload(media / "clip.mp4").id, timeout=120)
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED, done.error
    # Removed off the conversion's time, right after SUCCEEDED is recorded.
    wait_for(
        lambda: ObjectId(done.id) not in stored_video_ids(stack),
        "the video is deleted after success",
        timeout=30,
    )
    jobs = stack.mongo()[stack.env["MONGO_DB"]]["jobs"]
    jobs.update_one({"_id": ObjectId(done.id)}, {"$set": {"expires_at": time.time() - 1}})
    deadline = time.monotonic() + 60
    while "expired_at" not in jobs.find_one({"_id": ObjectId(done.id)}):
        assert time.monotonic() < deadline, "the retention sweep did not expire the job"
        time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as exc:
        client.download(done.mp3_file_id, tmp_path / "gone.mp3")
    assert status_of(exc) == grpc.StatusCode.NOT_FOUND
    assert "expired" in exc.value.details()  # type: ignore[attr-defined]
    mp3s = stack.mongo()[stack.env["MONGO_DB"]]["mp3s.files"]
    assert mp3s.find_one({"_id": ObjectId(done.mp3_file_id)}) is None


def test_upload_over_48_mb_with_flat_gateway_memory(stack: Stack, tmp_path: Path) -> None:
    """A file bigger than the MongoDB stand-in's 48 MB reply limit goes both ways, and the
    gateway does not hold it: once warm, a second upload of it barely moves its memory."""
    video = make_video(tmp_path / "big.mp4", 30, size="1280x720", bitrate="24M")
    size = video.stat().st_size
    assert size > 48 * 1024 * 1024
    client, _ = stack.new_user()

    done = client.wait(client.upload(video).id, timeout=300)
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED, done.error
    client.download(done.mp3_file_id, tmp_path / "big.mp3")
    assert abs(float(ffprobe(tmp_path / "big.mp3")["format"]["duration"]) - 30) <= 0.2

    # 90 MB of noise: not a video (its job will fail), but the gateway does not know that.
    noise = tmp_path / "noise.bin"
    with noise.open("wb") as f:
        for _ in range(90):
            f.write(os.urandom(1_000_000))
    with PeakRss(stack.service_process("gateway")) as rss:
        client.upload(noise)
    print(f"gateway RSS {rss.before >> 20} MiB, peak {rss.peak >> 20} MiB during a 90 MB upload")
    assert rss.growth < 32 * 1024 * 1024, (
        f"gateway grew {rss.growth >> 20} MiB during a 90 MB upload"
    )


def test_download_of_a_big_file_with_flat_gateway_memory(stack: Stack, tmp_path: Path) -> None:
    """Download reads ahead one window while it sends the current one: memory stays at a
    few windows whatever the file's size (here 90 MB, nearly twice the stand-in's 48 MB
    reply limit)."""
    client, _ = stack.new_user()
    owner = client.upload(make_video(tmp_path / "small.mp4", 1)).owner_id
    data = os.urandom(90_000_000)
    mp3_id = ObjectId()
    db = stack.mongo()[stack.env["MONGO_DB"]]
    gridfs_io.write_file(db, gridfs_io.MP3S, mp3_id, "big.mp3", io.BytesIO(data),
                         {"owner_id": owner, "content_type": "audio/mpeg"})  # fmt: skip
    client.download(str(mp3_id), tmp_path / "warm.mp3")  # first download: pools, buffers
    with PeakRss(stack.service_process("gateway")) as rss:
        assert client.download(str(mp3_id), tmp_path / "big.mp3") == len(data)
    print(f"gateway RSS {rss.before >> 20} MiB, peak {rss.peak >> 20} MiB during a 90 MB download")
    assert (tmp_path / "big.mp3").read_bytes() == data
    assert rss.growth < 32 * 1024 * 1024, f"gateway grew {rss.growth >> 20} MiB"


# --- auth ------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_answer(stack: Stack) -> None:
    client, address = stack.new_user()
    answers = []
    for email, password in [(address, "not the password"), ("nobody@example.com", PASSWORD)]:
        with pytest.raises(grpc.RpcError) as exc:
            client.login(email, password)
        answers.append((status_of(exc), exc.value.details()))  # type: ignore[attr-defined]
    assert (
        answers[0]
        == answers[1]
        == (grpc.StatusCode.UNAUTHENTICATED, "email or password is incorrect")
    )


def test_login_with_http_basic_credentials(stack: Stack) -> None:
    client, address = stack.new_user()
    import base64

    basic = base64.b64encode(f"{address}:{PASSWORD}".encode()).decode()
    reply = client.auth.Login(
        auth_pb2.LoginRequest(), metadata=(("authorization", f"Basic {basic}"),)
    )
    me = client.auth.WhoAmI(
        auth_pb2.WhoAmIRequest(), metadata=(("authorization", f"Bearer {reply.token}"),)
    )
    assert me.user.email == address


def test_register_twice_keeps_the_first_account(stack: Stack) -> None:
    """A second Register of an email answers as the first did, and changes nothing."""
    client, address = stack.new_user()
    again = client.register(address.upper(), "another password entirely")
    assert (again.email, again.id) == (address, "")
    assert client.login(address, PASSWORD)
    with pytest.raises(grpc.RpcError) as exc:
        client.login(address, "another password entirely")
    assert status_of(exc) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("email", "password", "needle"),
    [
        ("not-an-email", PASSWORD, "email is not valid"),
        ("short@example.com", "short", "password must be"),
    ],
)
def test_register_rejects_bad_input(stack: Stack, email: str, password: str, needle: str) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stack.client().register(email, password)
    assert status_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in exc.value.details()  # type: ignore[attr-defined]


def _token(stack: Stack, **overrides: object) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(uuid.uuid4()),
        "email": "x@example.com",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "iss": "mp3mesh-auth",
        "aud": "mp3mesh",
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    key = claims.pop("key", stack.signing_key)
    assert isinstance(key, Ed25519PrivateKey)
    return sign_token(claims, key)


def _unsigned(token: str) -> str:
    """The token's claims under ``alg: none``, naming the real key."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(
        claims, None, algorithm="none", headers={"kid": jwt.get_unverified_header(token)["kid"]}
    )


def _hs256_with_public_key(stack: Stack) -> str:
    """The classic key-confusion forgery: HMAC keyed with the published public key."""
    public = stack.signing_key.public_key()
    claims = jwt.decode(_token(stack), options={"verify_signature": False})
    secret = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(public)})


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "missing bearer token"),
        ("forged", "signature is invalid"),
        ("expired", "expired"),
        ("wrong audience", "token is invalid"),
        ("garbage", "token is invalid"),
        ("alg none", "not a signed JWT"),
        ("HS256 keyed with the public key", "algorithm no longer accepted"),
    ],
)
def test_file_service_refuses_bad_tokens(stack: Stack, case: str, needle: str) -> None:
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    token = {
        "missing": None,
        "forged": sign_token(
            jwt.decode(_token(stack), options={"verify_signature": False}),
            Ed25519PrivateKey.generate(),
            kid=key_id(stack.signing_key.public_key()),
        ),
        "expired": _token(stack, exp=expired, iat=expired - dt.timedelta(hours=1)),
        "wrong audience": _token(stack, aud="someone-else"),
        "garbage": "not.a.jwt",
        "alg none": _unsigned(_token(stack)),
        "HS256 keyed with the public key": _hs256_with_public_key(stack),
    }[case]
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    client = stack.client()
    with pytest.raises(grpc.RpcError) as exc:
        client.files.ListJobs(files_pb2.ListJobsRequest(), metadata=metadata)
    assert status_of(exc) == grpc.StatusCode.UNAUTHENTICATED
    assert needle in exc.value.details()  # type: ignore[attr-defined]


# --- ownership and ids ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_job(stack: Stack, media: Path) -> files_pb2.Job:
    client, _ = stack.new_user()
    job = client.wait(client.upload(media / "clip.mp4").id)
    assert job.status == files_pb2.JOB_STATUS_SUCCEEDED
    return job


def test_another_users_job_and_file_are_not_found(
    stack: Stack, finished_job: files_pb2.Job
) -> None:
    intruder, _ = stack.new_user()
    calls = [
        lambda: intruder.files.GetJob(
            files_pb2.GetJobRequest(job_id=finished_job.id), metadata=intruder.metadata
        ),
        lambda: intruder.files.GetJob(
            files_pb2.GetJobRequest(fid=finished_job.id), metadata=intruder.metadata
        ),
        lambda: list(intruder.watch(finished_job.id)),
        lambda: intruder.download(finished_job.mp3_file_id, Path("/dev/null")),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert status_of(exc) == grpc.StatusCode.NOT_FOUND
        assert "no " in exc.value.details()  # type: ignore[attr-defined]
    assert (
        intruder.files.ListJobs(files_pb2.ListJobsRequest(), metadata=intruder.metadata).jobs == []
    )


@pytest.mark.parametrize("bad_id", ["123", "zzzzzzzzzzzzzzzzzzzzzzzz", "../../etc/passwd"])
def test_malformed_ids_are_invalid_argument(stack: Stack, bad_id: str) -> None:
    client, _ = stack.new_user()
    for call in [
        lambda: client.files.GetJob(
            files_pb2.GetJobRequest(job_id=bad_id), metadata=client.metadata
        ),
        lambda: client.download(bad_id, Path("/dev/null")),
        lambda: client.files.ListJobs(
            files_pb2.ListJobsRequest(page_token=bad_id), metadata=client.metadata
        ),
    ]:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert status_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid id" in exc.value.details()  # type: ignore[attr-defined]


def test_unknown_but_wellformed_id_is_not_found(stack: Stack) -> None:
    client, _ = stack.new_user()
    with pytest.raises(grpc.RpcError) as exc:
        client.files.GetJob(
            files_pb2.GetJobRequest(job_id=str(ObjectId())), metadata=client.metadata
        )
    assert status_of(exc) == grpc.StatusCode.NOT_FOUND


# --- uploads that must leave nothing behind ---------------------------------------------------


def _meta(**kw: object) -> files_pb2.UploadRequest:
    return files_pb2.UploadRequest(metadata=files_pb2.UploadMetadata(filename="v.mp4", **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("no messages", grpc.StatusCode.INVALID_ARGUMENT, "upload is empty"),
        ("metadata only", grpc.StatusCode.INVALID_ARGUMENT, "0 bytes"),
        ("size mismatch", grpc.StatusCode.INVALID_ARGUMENT, "metadata.size_bytes says 999"),
        ("sha mismatch", grpc.StatusCode.INVALID_ARGUMENT, "metadata.sha256 says"),
        ("metadata twice", grpc.StatusCode.INVALID_ARGUMENT, "first message only"),
        ("oversize", grpc.StatusCode.RESOURCE_EXHAUSTED, "byte limit"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(
    stack: Stack, case: str, code: grpc.StatusCode, needle: str
) -> None:
    client, _ = stack.new_user()
    block = b"\0" * (1024 * 1024)
    streams = {
        "no messages": [],
        "metadata only": [_meta()],
        "size mismatch": [_meta(size_bytes=999), files_pb2.UploadRequest(chunk=b"abc")],
        "sha mismatch": [_meta(sha256="0" * 64), files_pb2.UploadRequest(chunk=b"abc")],
        "metadata twice": [_meta(), files_pb2.UploadRequest(chunk=b"abc"), _meta()],
        "oversize": [_meta()]
        + [files_pb2.UploadRequest(chunk=block)] * (TEST_MAX_UPLOAD_BYTES // len(block) + 1),
    }[case]
    user_id = client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=client.metadata).user.id
    before = stored_video_ids(stack)
    with pytest.raises(grpc.RpcError) as exc:
        client.files.Upload(iter(streams), metadata=client.metadata, timeout=120)
    assert status_of(exc) == code
    assert needle in exc.value.details()  # type: ignore[attr-defined]
    # Every refused upload, an empty stream included, goes through atomic_upload, which
    # logs its discard (the log line may reach the file a moment after the answer).
    discarded = discarded_uploads(stack, user_id, 1)
    assert len(discarded) == 1
    # Nothing new (a conversion finishing meanwhile may remove an earlier test's video).
    assert_nothing_kept(stack, discarded)
    assert stored_video_ids(stack) <= before
    assert client.files.ListJobs(files_pb2.ListJobsRequest(), metadata=client.metadata).jobs == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [("notes.txt", "not a video ffmpeg can read"), ("silent.mp4", "no audio track")],
)
def test_unconvertible_upload_fails_with_reason_and_empty_queues(
    stack: Stack, media: Path, name: str, reason: str
) -> None:
    client, _ = stack.new_user()
    job = client.upload(media / name, content_type="video/mp4")
    done = client.wait(job.id, timeout=120)
    assert done.status == files_pb2.JOB_STATUS_FAILED
    assert reason in done.error
    assert done.mp3_file_id == "" and done.attempts == 1
    assert list(Path(stack.env["WORK_DIR"]).iterdir()) == [], "converter left temp files"
    mail = stack.wait_for_mail(job.id)
    assert "could not convert" in mail["Subject"] and reason in mail.get_content()
    for queue in (stack.env["VIDEO_QUEUE"], stack.env["MP3_QUEUE"]):
        assert stack.queue_depth(queue)[0] == 0
        assert stack.queue_depth(f"{queue}.dead")[0] == 0


def test_list_jobs_pages_newest_first(stack: Stack, media: Path) -> None:
    client, _ = stack.new_user()
    ids = [client.upload(media / "notes.txt").id for _ in range(3)]
    page1 = client.files.ListJobs(files_pb2.ListJobsRequest(page_size=2), metadata=client.metadata)
    assert [j.id for j in page1.jobs] == ids[::-1][:2] and page1.next_page_token
    page2 = client.files.ListJobs(
        files_pb2.ListJobsRequest(page_size=2, page_token=page1.next_page_token),
        metadata=client.metadata,
    )
    assert [j.id for j in page2.jobs] == ids[:1] and page2.next_page_token == ""
    with pytest.raises(grpc.RpcError) as exc:
        client.files.ListJobs(files_pb2.ListJobsRequest(page_size=-1), metadata=client.metadata)
    assert status_of(exc) == grpc.StatusCode.INVALID_ARGUMENT


def test_chunked_upload_with_checks(stack: Stack, media: Path) -> None:
    """size and sha256 in the metadata, checked by the gateway, recorded on the job."""
    client, _ = stack.new_user()
    reply = client.files.Upload(
        upload_requests(media / "clip.mp4", chunk_size=64 * 1024), metadata=client.metadata
    )
    assert len(reply.job.video_sha256) == 64


def test_a_job_the_broker_refuses_is_kept_and_announced_once_the_queue_is_back(
    stack: Stack, media: Path
) -> None:
    """The outbox: a second gateway whose video queue disappears gets its publish back as
    unroutable (mandatory + confirms). The upload still answers OK: the video and the job
    are stored, the announcement stays pending on the job record, and the gateway's relay
    publishes it once the queue exists again."""
    queue = f"video.gone-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ, **stack.env, "GATEWAY_LISTEN": address, "VIDEO_QUEUE": queue,
        "RELAY_INTERVAL_SECONDS": "0.5", "PUBLISH_TIMEOUT_SECONDS": "2",
    }  # fmt: skip
    gateway = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", "mp3mesh.gateway"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        client, _ = stack.new_user()
        deadline = time.monotonic() + 60
        while not is_serving(address):
            assert time.monotonic() < deadline and gateway.poll() is None, "gateway did not start"
            time.sleep(0.2)
        conn.channel().queue_delete(queue)

        with grpc.insecure_channel(address) as channel:
            stub = files_pb2_grpc.FileServiceStub(channel)
            job = stub.Upload(
                upload_requests(media / "clip.mp4"), metadata=client.metadata, timeout=60
            ).job
        assert job.status == files_pb2.JOB_STATUS_QUEUED
        jobs_collection = stack.mongo()[stack.env["MONGO_DB"]]["jobs"]
        assert "announce_at" in jobs_collection.find_one({"_id": ObjectId(job.id)})
        assert ObjectId(job.id) in stored_video_ids(stack)

        declare_queues(conn.channel(), [queue])  # the queue is back
        deadline = time.monotonic() + 30
        channel = conn.channel()
        while (got := channel.basic_get(queue, auto_ack=True))[0] is None:
            assert time.monotonic() < deadline, "the relay did not publish the pending job"
            time.sleep(0.2)
        assert decode(got[2], got[1], events_pb2.VideoUploaded).job_id == job.id
        deadline = time.monotonic() + 10
        while "announce_at" in jobs_collection.find_one({"_id": ObjectId(job.id)}):
            assert time.monotonic() < deadline, "the announcement stayed pending after its confirm"
            time.sleep(0.2)
    finally:
        gateway.terminate()
        gateway.wait(20)
        drop_queues(queue)
        conn.close()


def test_list_revocations_has_a_logged_out_token_until_it_expires(stack: Stack) -> None:
    """The snapshot a verifier starts from: the token's jti and expiry, once logged out."""
    client, _ = stack.new_user()
    token = client.token
    claims = jwt.decode(token, options={"verify_signature": False})
    client.logout()
    reply = client.auth.ListRevocations(auth_pb2.ListRevocationsRequest(), timeout=60)
    live = {r.token_id: r.expire_time.seconds for r in reply.revocations}
    assert live[claims["jti"]] == claims["exp"]
