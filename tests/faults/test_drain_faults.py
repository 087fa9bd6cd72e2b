"""A gateway stopped (SIGTERM) while clients keep calling through Envoy, with a second
gateway serving beside it: the stopping one answers health checks NOT_SERVING at once and
keeps serving for DRAIN_DELAY_SECONDS while Envoy's active health checks drop it
(mp3mesh/core/grpc_server.py), so no call fails. Envoy here is the real one with the
project's rendered config; the only change is a second endpoint in its gateway cluster,
which Kubernetes gives it through the headless Service's DNS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from devstack import ROOT, ServiceStack, free_port, http_ok, wait_for
from mp3mesh.cli.client import MeshClient, is_serving
from mp3mesh.files.v1 import files_pb2

pytestmark = pytest.mark.faults

# Envoy checks FileService's health every 5 s and drops a host after two failed checks
# (envoy/envoy.yaml.tmpl): 15 s leaves room on a loaded machine.
DRAIN_DELAY_SECONDS = 15


@dataclass
class Envoy:
    url: str
    admin: str
    process: subprocess.Popen[bytes]

    def gateway_hosts(self) -> dict[str, str]:
        """Each host of the gateway cluster and its health flags, as Envoy's admin says."""
        hosts = {}
        for line in httpx.get(f"{self.admin}/clusters", timeout=5).text.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == "gateway" and parts[2] == "health_flags":
                hosts[parts[1]] = parts[3]
        return hosts

    def healthy(self, address: str) -> bool:
        return self.gateway_hosts().get(address) == "healthy"


@pytest.fixture
def envoy_over_two_gateways(mesh: ServiceStack, tmp_path: Path) -> Iterator[tuple[Envoy, str]]:
    """A second gateway, and Envoy balancing over both; the stack's gateway is put back
    as it was afterwards."""
    second = f"127.0.0.1:{free_port()}"
    mesh.start_another(
        "gateway-b", like="gateway", env={"GATEWAY_LISTEN": second, "GATEWAY_METRICS_PORT": "0"}
    )
    port, admin = free_port(), free_port()
    env = {**os.environ, **mesh.env, "ENVOY_PORT": str(port), "ENVOY_ADMIN_PORT": str(admin)}
    rendered = subprocess.run(
        [sys.executable, str(ROOT / "envoy/render.py"), "--require-descriptor"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    config = yaml.safe_load(rendered)
    [cluster] = [c for c in config["static_resources"]["clusters"] if c["name"] == "gateway"]
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    host, _, second_port = second.rpartition(":")
    endpoints.append(
        {
            "endpoint": {
                "address": {"socket_address": {"address": host, "port_value": int(second_port)}}
            }
        }
    )
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "envoy.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/envoy"), "-c", str(path), "--disable-hot-restart",
         "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    envoy = Envoy(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", process)
    try:
        wait_for(lambda: http_ok(f"{envoy.url}/healthz"), "Envoy serves", timeout=60)
        yield envoy, second
    finally:
        process.terminate()
        process.wait(15)
        log.close()
        if mesh.processes["gateway"].poll() is not None:
            mesh.start("gateway", {})
        else:
            mesh.restart("gateway", {})
        mesh.stop("gateway-b")


@dataclass
class Callers:
    """Threads calling ListJobs through Envoy back to back, counting what came back."""

    url: str
    token: str
    threads: int = 4
    answers: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Callers:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._call)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(30)

    def _call(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    reply = http.get("/v1/jobs")
                    self.answers.append((time.monotonic(), reply.status_code, reply.text[:200]))
                except httpx.HTTPError as exc:
                    self.answers.append((time.monotonic(), 0, repr(exc)))

    def failed(self) -> list[tuple[float, int, str]]:
        return [a for a in self.answers if a[1] != 200]


def _stop_gateway_under_load(
    mesh: ServiceStack, envoy: Envoy, client: MeshClient, drain_delay: float
) -> tuple[Callers, float | None, float]:
    """Restart the stack's gateway with ``drain_delay``, wait until Envoy counts it
    healthy, SIGTERM it while callers call through Envoy and wait until it exited, calling
    on 2 s more. Returns the callers, when Envoy flagged the gateway (seconds after
    SIGTERM; None if not before it exited) and when it exited."""
    mesh.restart("gateway", {"DRAIN_DELAY_SECONDS": str(drain_delay)})
    address = mesh.env["GATEWAY_LISTEN"]
    wait_for(lambda: envoy.healthy(address), "Envoy counts the gateway healthy", timeout=60)
    direct = MeshClient(mesh.env["AUTH_LISTEN"], address)
    mesh.clients.append(direct)
    direct.token = client.token
    flagged_after = None
    with Callers(envoy.url, client.token) as callers:
        wait_for(lambda: len(callers.answers) > 20, "calls through Envoy", timeout=30)
        mesh.send("gateway", signal.SIGTERM)
        stopped_at = time.monotonic()
        if drain_delay:
            wait_for(lambda: not is_serving(address), "NOT_SERVING", timeout=5)
            # NOT_SERVING, and still serving.
            direct.files.ListJobs(files_pb2.ListJobsRequest(), metadata=direct.metadata, timeout=5)
        while mesh.processes["gateway"].poll() is None:
            flags = envoy.gateway_hosts().get(address)
            if flagged_after is None and flags != "healthy":
                flagged_after = time.monotonic() - stopped_at
                print(f"Envoy's health flags of the stopping gateway: {flags}")
            time.sleep(0.2)
            assert time.monotonic() - stopped_at < drain_delay + 30, "the gateway did not exit"
        exited_after = time.monotonic() - stopped_at
        time.sleep(2)
    return callers, flagged_after, exited_after


def test_a_gateway_stopped_under_load_behind_envoy_fails_no_call(
    mesh: ServiceStack, envoy_over_two_gateways: tuple[Envoy, str]
) -> None:
    envoy, _ = envoy_over_two_gateways
    client = mesh.new_user()
    # For comparison, not asserted: the same stop without the delay.
    undrained, _, _ = _stop_gateway_under_load(mesh, envoy, client, 0)
    print(f"without a drain delay: {len(undrained.failed())} of {len(undrained.answers)} "
          f"calls through Envoy failed")  # fmt: skip

    callers, flagged_after, exited_after = _stop_gateway_under_load(
        mesh, envoy, client, DRAIN_DELAY_SECONDS
    )
    dropped = "never" if flagged_after is None else f"{flagged_after:.1f} s"
    print(f"with DRAIN_DELAY_SECONDS={DRAIN_DELAY_SECONDS}: {len(callers.failed())} of "
          f"{len(callers.answers)} calls through Envoy failed; Envoy dropped the gateway "
          f"{dropped} after SIGTERM, it exited {exited_after:.1f} s after")  # fmt: skip
    assert callers.failed() == []
    assert flagged_after is not None and flagged_after < DRAIN_DELAY_SECONDS
