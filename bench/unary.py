"""Unary latency: ValidateToken (auth, gRPC) and GetJob over gRPC and through both REST
edges, one request at a time from one client. If the gateway has a ValidateToken cache
(TOKEN_CACHE_SECONDS), GetJob is measured with it off (0) and at its default."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from bson import ObjectId

from bench.core import Bench, Section, percentile
from gateway.settings import GatewaySettings
from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.files.v1 import files_pb2

ORDER = 40
CACHE_SETTING = "token_cache_seconds"


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
        "p99 <= 3 ms",
    )
    for edge, url in (("Envoy", b.stack.envoy_url), ("shim", b.stack.shim_url)):
        with httpx.Client(base_url=url, headers=headers) as http:

            def get(http: httpx.Client = http) -> object:
                return http.get(f"/v1/jobs/{job.id}").raise_for_status()

            times = _latencies(get, count)
        target = "p99 <= 5 ms" if edge == "Envoy" else ""
        _row(section, f"GetJob, REST via {edge}{label}", times, target)


def run(b: Bench) -> Section:
    count = 100 if b.quick else 1000
    section = Section("Unary latency", ["call", "n", "p50 ms", "p99 ms", "target"])
    client = b.user()
    request = auth_pb2.ValidateTokenRequest(token=client.token)
    validate = _latencies(lambda: client.auth.ValidateToken(request), count)
    _row(section, "ValidateToken, gRPC", validate)
    if CACHE_SETTING in GatewaySettings.model_fields:
        default = GatewaySettings.model_fields[CACHE_SETTING].default
        b.stack.restart("gateway", {CACHE_SETTING.upper(): "0"})
        _get_job_rows(b, section, count, f" ({CACHE_SETTING.upper()}=0)")
        b.stack.restart("gateway", {})
        _get_job_rows(b, section, count, f" ({CACHE_SETTING.upper()}={default:g}, default)")
    else:
        _get_job_rows(b, section, count, "")
        section.notes.append("The gateway has no ValidateToken cache in this commit.")
    section.notes.append(
        f"{count} sequential calls each after 20 to warm up; one client, keep-alive connections."
        " GetJob is ValidateToken (the gateway asks auth) plus one MongoDB read: the floor rows"
        " measure that read alone from the bench process."
    )
    return section
