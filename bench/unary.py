"""Unary latency: ValidateToken (auth, gRPC) and GetJob over gRPC and through both REST
edges, one request at a time from one client, side by side in one run. Tokens are
checked where they arrive (signature against auth's JWKS, revocations in memory), with
no cache of checked tokens: the check alone is measured too, to show what a cache could
still save."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from bson import ObjectId
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2

from bench.core import Bench, Section, percentile
from bench.ghz_load import PROTOSET, ROOT, ghz_binary, run_ghz
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.revocations import RevocationSet, revocation_message
from mp3mesh.core.tokens import TokenVerifier, keys_from_jwks
from mp3mesh.core.verification import JWK_FIELDS, LocalVerifier
from mp3mesh.files.v1 import files_pb2

ORDER = 40
WARM_UP = 20


def _latencies(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(WARM_UP):  # warm: connections, caches
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


def _get_job_rows(b: Bench, section: Section, count: int, go: GoTools) -> None:
    client = b.user()
    job = client.upload(b.clip(1))
    headers = {"Authorization": f"Bearer {client.token}"}
    request = files_pb2.GetJobRequest(job_id=job.id)
    record = {"_id": ObjectId(job.id), "owner_id": job.owner_id}
    jobs = b.db()["jobs"]
    _row(section, "(floor) MongoDB find_one of the job record, pymongo",
         _latencies(lambda: jobs.find_one(record), count))  # fmt: skip
    _row(
        section,
        "(floor) gRPC health check at the gateway, ghz",
        go.ghz_times(
            HEALTH, "Check", {}, None, b.stack.env["GATEWAY_LISTEN"], go.health_protoset()
        ),
    )
    _row(
        section,
        "GetJob, gRPC, Python client",
        _latencies(lambda: client.files.GetJob(request, metadata=client.metadata), count),
    )
    _row(
        section,
        "GetJob, gRPC, ghz",
        go.ghz_times(
            FILES, "GetJob", {"job_id": job.id}, client.token, b.stack.env["GATEWAY_LISTEN"]
        ),
        "p99 <= 2 ms",
    )
    for edge, url in (("Envoy", b.stack.envoy_url), ("shim", b.stack.shim_url)):
        with httpx.Client(base_url=url, headers=headers) as http:

            def get(http: httpx.Client = http) -> object:
                return http.get(f"/v1/jobs/{job.id}").raise_for_status()

            times = _latencies(get, count)
        _row(section, f"GetJob, REST via {edge}, Python client (httpx)", times)
        _row(
            section,
            f"GetJob, REST via {edge}, vegeta",
            go.vegeta_times(f"{url}/v1/jobs/{job.id}", client.token),
            "p99 <= 3 ms" if edge == "Envoy" else "",
        )


def vegeta_binary() -> Path:
    """vegeta at the pinned version (bench/ghz.env), built once into the user's cache."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "ghz_build.sh"), "vegeta"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return Path(built.stdout.strip().splitlines()[-1])


FILES = "mp3mesh.files.v1.FileService"
AUTH = "mp3mesh.auth.v1.AuthService"
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class GoTools:
    """The same calls made by standard Go load tools, one at a time: ghz (gRPC) and
    vegeta (HTTP/1.1), each with one worker on one keep-alive connection, WARM_UP calls
    first on that connection and left out. What they measure is the server's latency
    without the Python client's own time and pauses in it."""

    b: Bench
    count: int
    ghz: Path = field(default_factory=ghz_binary)
    vegeta: Path = field(default_factory=vegeta_binary)

    def ghz_times(self, service: str, method: str, data: dict[str, Any], token: str | None,
                  address: str, protoset: Path = PROTOSET) -> list[float]:  # fmt: skip
        report = run_ghz(
            self.b, self.ghz, method, data, self.count, token, concurrency=1,
            service=service, address=address, skip_first=WARM_UP, protoset=protoset,
        )  # fmt: skip
        details = report.get("details") or []
        failed = [d for d in details if d.get("status") != "OK"]
        if failed or len(details) != self.count:
            raise RuntimeError(f"ghz {method}: {len(details)} calls, {len(failed)} failed: "
                               f"{failed[:1]}")  # fmt: skip
        return [d["latency"] / 1e9 for d in details]

    def health_protoset(self) -> Path:
        """The standard health service's descriptor, for ghz, from grpcio-health-checking
        (the mesh's own protoset does not hold it)."""
        path = self.b.work / "health.binpb"
        files = descriptor_pb2.FileDescriptorSet()
        health_pb2.DESCRIPTOR.CopyToProto(files.file.add())
        path.write_bytes(files.SerializeToString())
        return path

    def vegeta_times(self, url: str, token: str) -> list[float]:
        target = f"GET {url}\nAuthorization: Bearer {token}\n\n"
        attack = subprocess.run(
            [str(self.vegeta), "attack", "-lazy", "-rate=0", "-workers=1", "-max-workers=1",
             "-max-connections=1", "-connections=1", "-timeout=20s"],
            input=(target * (self.count + WARM_UP)).encode(), capture_output=True, timeout=600,
        )  # fmt: skip
        if attack.returncode != 0:
            raise RuntimeError(f"vegeta failed: {attack.stderr.decode()[-500:]}")
        encoded = subprocess.run(
            [str(self.vegeta), "encode", "-to=json"], input=attack.stdout, capture_output=True,
            check=True, timeout=600,
        )  # fmt: skip
        # The attack ends with one more result saying it ran out of targets.
        results = sorted(
            (json.loads(line) for line in encoded.stdout.decode().splitlines() if line.strip()),
            key=lambda r: r["seq"],
        )[WARM_UP : WARM_UP + self.count]
        failed = [r for r in results if r["code"] != 200]
        if failed or len(results) != self.count:
            raise RuntimeError(f"vegeta: {len(results)} GETs, {len(failed)} failed: {failed[:1]}")
        return [r["latency"] / 1e9 for r in results]


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
    go = GoTools(b, count)
    section = Section("Unary latency", ["call", "n", "p50 ms", "p99 ms", "target"])
    client = b.user()
    request = auth_pb2.ValidateTokenRequest(token=client.token)
    validate = _latencies(lambda: client.auth.ValidateToken(request), count)
    _row(section, "ValidateToken, gRPC, Python client", validate)
    _row(
        section,
        "ValidateToken, gRPC, ghz",
        go.ghz_times(
            AUTH, "ValidateToken", {"token": client.token}, None, b.stack.env["AUTH_LISTEN"]
        ),
        "p99 <= 1.5 ms",
    )
    verifier = _local_check(b, client.token)
    loop = asyncio.new_event_loop()
    try:
        check = _latencies(lambda: loop.run_until_complete(verifier.verify(client.token)), count)
    finally:
        loop.close()
    _row(section, f"(in process) the token check alone, {REVOKED} revocations held", check)
    _get_job_rows(b, section, count, go)
    section.notes.append(
        f"{count} sequential calls per row, each row after {WARM_UP} to warm up; one client,"
        " one keep-alive connection, no token cache. Every call's token is checked where it"
        " arrives (EdDSA signature against auth's JWKS, claims, the revocation set in"
        " memory): ValidateToken at auth, GetJob at the gateway (and at Envoy or the shim"
        " before it), with no call to auth. The floor rows measure, apart, what every"
        " GetJob pays before its own work: a health check at the gateway (the same server,"
        " connection and interceptors, no token, no store) and GetJob's MongoDB read alone"
        " from the bench process; the in-process row is the whole token check, what a"
        " cache of checked tokens could save per call."
    )
    section.notes.append(
        "\nThe targets are judged on the rows measured by standard Go clients (ghz for gRPC,"
        " vegeta for REST; scripts/ghz_build.sh builds both), one worker on one keep-alive"
        " connection: the targets are the server's latency. The Python rows (grpcio's"
        " synchronous stub, httpx) also count the Python client's own time per call and its"
        " pauses; they stay, side by side, as what a Python caller sees."
    )
    return section
