"""Load with a standard tool: ghz (built from the Go module proxy, scripts/ghz_build.sh)
calling GetJob and ListJobs from 50 concurrent clients: throughput, p99, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.core import Bench, Section

ORDER = 45
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 50
PROTOSET = ROOT / "envoy" / "descriptor.binpb"  # every proto of the mesh, compiled


def ghz_binary() -> Path:
    """ghz at the pinned version (bench/ghz.env), built once into the user's cache."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "ghz_build.sh")], capture_output=True, text=True, check=True
    )
    return Path(built.stdout.strip().splitlines()[-1])


def _percentile_ms(report: dict[str, Any], percentage: int) -> float:
    return next(
        (d["latency"] / 1e6 for d in report.get("latencyDistribution") or []
         if d["percentage"] == percentage),
        0.0,
    )  # fmt: skip


def summary(report: dict[str, Any]) -> dict[str, float]:
    """What the row shows of ghz's JSON report (its latencies are in nanoseconds)."""
    codes = report.get("statusCodeDistribution") or {}
    return {
        "count": report["count"],
        "rps": report["rps"],
        "p50 ms": _percentile_ms(report, 50),
        "p99 ms": _percentile_ms(report, 99),
        "errors": sum(n for code, n in codes.items() if code != "OK"),
    }


def run_ghz(
    b: Bench,
    ghz: Path,
    method: str,
    data: dict[str, Any],
    total: int,
    token: str | None,
    *,
    concurrency: int = CONCURRENCY,
    service: str = "mp3mesh.files.v1.FileService",
    address: str | None = None,
    skip_first: int = 0,
    protoset: Path = PROTOSET,
) -> dict[str, Any]:
    """One ghz run against the gateway (or ``address``) with ``token``; its JSON report.
    ``skip_first``: calls made but left out of the tally (a warm-up on the same
    connection); ``protoset``: where ``service`` is described (the mesh's protos by
    default)."""
    env = b.stack.env
    tls = (
        ["--cacert", env["TLS_CA_FILE"], "--cert", env["TLS_CERT_FILE"],
         "--key", env["TLS_KEY_FILE"], "--cname", env.get("GATEWAY_TLS_NAME", "gateway")]
        if env.get("TLS_CA_FILE") else ["--insecure"]
    )  # fmt: skip
    metadata = ["--metadata", json.dumps({"authorization": f"Bearer {token}"})] if token else []
    command = [
        str(ghz), *tls, "--protoset", str(protoset),
        "--call", f"{service}/{method}",
        "--data", json.dumps(data), *metadata,
        "--concurrency", str(concurrency), "--connections", "1",
        "--total", str(total + skip_first), "--skipFirst", str(skip_first),
        "--timeout", "20s", "--format", "json",
        address or env["GATEWAY_LISTEN"],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if not done.stdout.strip():
        raise RuntimeError(f"ghz failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def run(b: Bench) -> Section:
    section = Section(
        f"Load: ghz, {CONCURRENCY} concurrent clients",
        ["call", "requests", "per second", "p50 ms", "p99 ms", "errors (target: 0)"],
    )
    ghz = ghz_binary()
    client = b.user()
    job = client.upload(b.clip(1))
    for _ in range(4):  # a page of several jobs
        client.upload(b.clip(1))
    total = 2000 if b.quick else 10000
    for method, data in (("GetJob", {"job_id": job.id}), ("ListJobs", {"page_size": 20})):
        report = run_ghz(b, ghz, method, data, total, client.token)
        s = summary(report)
        section.rows.append(
            [method, int(s["count"]), s["rps"], s["p50 ms"], s["p99 ms"], int(s["errors"])]
        )
    section.notes.append(
        f"ghz {ghz.parent.name} (scripts/ghz_build.sh), {total} calls per row from"
        f" {CONCURRENCY} concurrent workers over one connection, straight to the gateway"
        " (gRPC), each call with the job owner's bearer token (checked at the gateway, no"
        " cache); ListJobs asks for a page of 20 of the user's 5 jobs."
    )
    return section
