"""Unary latency: ValidateToken (auth, gRPC) and GetJob over gRPC and through both REST
edges, one request at a time from one client, side by side in one run. Tokens are
checked where they arrive (signature against auth's JWKS, revocations in memory), with
no cache of checked tokens: the check alone is measured too, to show what a cache could
still save."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import httpx
from bson import ObjectId

from bench.core import Bench, Section, percentile
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.revocations import RevocationSet, revocation_message
from mp3mesh.core.tokens import TokenVerifier, keys_from_jwks
from mp3mesh.core.verification import JWK_FIELDS, LocalVerifier
from mp3mesh.files.v1 import files_pb2

ORDER = 40


def _latencies(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(20):  # warm: connections, caches
        call()
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def _row(section: Section, name: str, times: list[float], target: str = "") -> None:
    section.rows.append(
        [name, len(times), percentile(times, 50) * 1000, percentile(times, 99) * 1000, target]
    )


def _get_job_rows(b: Bench, section: Section, count: int, label: str) -> None:
    client = b.user()
    job = client.upload(b.clip(1))
    headers = {"Authorization": f"Bearer {client.token}"}
    request = files_pb2.GetJobRequest(job_id=job.id)
    record = {"_id": ObjectId(job.id), "owner_id": job.owner_id}
    jobs = b.db()["jobs"]
    _row(section, f"(floor) MongoDB find_one of the job record{label}",
         _latencies(lambda: jobs.find_one(record), count))  # fmt: skip
    _row(
        section,
        f"GetJob, gRPC{label}",
        _latencies(lambda: client.files.GetJob(request, metadata=client.metadata), count),
        "p99 <= 2 ms",
    )
    for edge, url in (("Envoy", b.stack.envoy_url), ("shim", b.stack.shim_url)):
        with httpx.Client(base_url=url, headers=headers) as http:

            def get(http: httpx.Client = http) -> object:
                return http.get(f"/v1/jobs/{job.id}").raise_for_status()

            times = _latencies(get, count)
        target = "p99 <= 3 ms" if edge == "Envoy" else ""
        _row(section, f"GetJob, REST via {edge}{label}", times, target)


def _local_check(b: Bench, token: str) -> LocalVerifier:
    """What the gateway and the shim check a token with, built the same way in the bench
    process: auth's JWKS, and a revocation set holding as many entries as ``revoked``."""
    with grpc.insecure_channel(b.stack.env["AUTH_LISTEN"]) as channel:
        jwks = auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest())
    keys = keys_from_jwks([{f: getattr(k, f) for f in JWK_FIELDS} for k in jwks.keys])
    revocations = RevocationSet()
    revocations.load(revocation_message(f"revoked-{i}", time.time() + 3600) for i in range(REVOKED))
    return LocalVerifier(TokenVerifier(keys), revocations)


# Revocations held while the local check is measured: a busy hour's logouts.
REVOKED = 10_000


def run(b: Bench) -> Section:
    count = 100 if b.quick else 1000
    section = Section("Unary latency", ["call", "n", "p50 ms", "p99 ms", "target"])
    client = b.user()
    request = auth_pb2.ValidateTokenRequest(token=client.token)
    validate = _latencies(lambda: client.auth.ValidateToken(request), count)
    _row(section, "ValidateToken, gRPC", validate, "p99 <= 1.5 ms")
    verifier = _local_check(b, client.token)
    loop = asyncio.new_event_loop()
    try:
        check = _latencies(lambda: loop.run_until_complete(verifier.verify(client.token)), count)
    finally:
        loop.close()
    _row(section, f"(in process) the token check alone, {REVOKED} revocations held", check)
    _get_job_rows(b, section, count, " (no token cache)")
    section.notes.append(
        f"{count} sequential calls each after 20 to warm up; one client, keep-alive connections."
        " Every call's token is checked where it arrives (EdDSA signature against auth's JWKS,"
        " claims, the revocation set in memory): ValidateToken at auth, GetJob at the gateway"
        " (and at Envoy or the shim before it), with no call to auth and no cache. The floor"
        " row measures GetJob's MongoDB read alone from the bench process; the in-process row"
        " is the whole token check, what a cache of checked tokens could save per call."
    )
    return section
