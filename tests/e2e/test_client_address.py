"""Client addresses that can be trusted, behind a real reverse proxy.

A deployment puts a proxy in front of Envoy (the prod overlay's Ingress). Here it is
Debian's nginx, forwarding to Envoy with ``X-Forwarded-For: $proxy_add_x_forwarded_for``
as ingress controllers do, and Envoy runs with ENVOY_TRUSTED_PROXY_HOPS=1. Two clients sit
in network namespaces this test creates, each joined to the host by a veth pair with
addresses of its own (10.R.1.0/30 and 10.R.2.0/30, R random): nginx listens on the host
ends. Each client gets its own login count in auth; a client that writes another's
address into X-Forwarded-For or x-mp3mesh-client-address still counts as itself.

Needs root (ip netns) and nginx (scripts/bootstrap.sh --test installs it).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from devstack import PASSWORD, ServiceStack, free_port, service_stack, wait_for
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY

LIMIT = 3
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(NGINX).exists() or not shutil.which("ip"),
    reason="needs root, ip and nginx (scripts/bootstrap.sh --test)",
)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@dataclass(frozen=True)
class Client:
    """A network namespace with one address, joined to the host by a veth pair."""

    namespace: str
    address: str  # the client's, inside the namespace
    host: str  # the host's end, where nginx listens

    def curl(self, url: str, *headers: str, basic: tuple[str, str]) -> int:
        args = ["ip", "netns", "exec", self.namespace, "curl", "-s", "-o", "/dev/null"]
        args += ["-w", "%{http_code}", "-X", "POST", "-u", ":".join(basic), "--max-time", "60"]
        for header in headers:
            args += ["-H", header]
        out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
        return int(out)


@contextmanager
def client_namespace(index: int, subnet: int) -> Iterator[Client]:
    tag = uuid.uuid4().hex[:6]
    namespace, host_end, ns_end = f"mp3sec-{tag}", f"msh{tag}", f"msn{tag}"
    host, address = f"10.{subnet}.{index}.1", f"10.{subnet}.{index}.2"
    _run("ip", "netns", "add", namespace)
    try:
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _run("ip", "link", "set", ns_end, "netns", namespace)
        _run("ip", "addr", "add", f"{host}/30", "dev", host_end)
        _run("ip", "link", "set", host_end, "up")
        inside = ("ip", "netns", "exec", namespace)
        _run(*inside, "ip", "addr", "add", f"{address}/30", "dev", ns_end)
        _run(*inside, "ip", "link", "set", ns_end, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        yield Client(namespace, address, host)
    finally:
        subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
{listen}
    location / {{
      proxy_pass http://127.0.0.1:{envoy_port};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


@contextmanager
def nginx(directory: Path, hosts: list[str], port: int, envoy_port: int) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    listen = "\n".join(f"    listen {host}:{port};" for host in hosts)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, listen=listen, envoy_port=envoy_port))
    _run(NGINX, "-t", "-c", str(conf), "-p", str(directory))
    process = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: (directory / "nginx.pid").exists(), "nginx started", 30)
        yield
    finally:
        process.terminate()
        process.wait(15)


@dataclass(frozen=True)
class Edge:
    mesh: ServiceStack
    email: str
    a: Client
    b: Client
    nginx_port: int

    def login(self, client: Client, *headers: str) -> int:
        url = f"http://{client.host}:{self.nginx_port}/login"
        return client.curl(url, *headers, basic=(self.email, PASSWORD))


@pytest.fixture(scope="module")
def edge(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceStack, str, list[Client]]]:
    var = tmp_path_factory.mktemp("client-address")
    subnet = random.randint(100, 250)  # a test subnet, not a secret
    with ExitStack() as stack:
        mesh = stack.enter_context(
            service_stack(
                var,
                ("mongo", "auth", "gateway", "shim", "envoy"),
                ENVOY_TRUSTED_PROXY_HOPS="1",
                LOGIN_REQUESTS_PER_MINUTE=str(LIMIT),
            )
        )
        clients = [stack.enter_context(client_namespace(i, subnet)) for i in (1, 2)]
        port = free_port()
        stack.enter_context(
            nginx(var / "nginx", [c.host for c in clients], port, int(mesh.env["ENVOY_PORT"]))
        )
        email = f"addr-{uuid.uuid4().hex[:12]}@example.com"
        with grpc.insecure_channel(mesh.env["AUTH_LISTEN"]) as channel:
            auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(email=email, password=PASSWORD),
                metadata=((CLIENT_ADDRESS_KEY, "192.0.2.99"),),
                timeout=60,
            )
        yield Edge(mesh, email, clients[0], clients[1], port)


def test_two_clients_behind_nginx_have_separate_counts_and_cannot_forge(edge: Edge) -> None:
    mesh, a, b, login = edge.mesh, edge.a, edge.b, edge.login

    a_plain = [login(a) for _ in range(LIMIT + 1)]
    # A pretends to be someone new: still A.
    a_forged = [
        login(a, "X-Forwarded-For: 198.51.100.77"),
        login(a, f"{CLIENT_ADDRESS_KEY}: 198.51.100.78"),
        login(a, "X-Forwarded-For: 198.51.100.79, 198.51.100.80"),
    ]
    # B claims to be A (whose count is spent) in both headers: still B, with its own count.
    b_forged = [
        login(b, f"X-Forwarded-For: {a.address}", f"{CLIENT_ADDRESS_KEY}: {a.address}")
        for _ in range(LIMIT + 1)
    ]
    print(
        f"\nthrough nginx -> Envoy (1 trusted hop): A {a.address} {a_plain}; A forging"
        f" X-Forwarded-For / {CLIENT_ADDRESS_KEY}: {a_forged}; B {b.address} claiming"
        f" to be A: {b_forged}"
    )
    assert a_plain == [200] * LIMIT + [429]
    assert a_forged == [429] * 3
    assert b_forged == [200] * LIMIT + [429]
    # Envoy's access log (flushed each second) names the two real clients, nothing forged.

    def logged_clients() -> set[str]:
        return {
            str(event.get("client"))
            for event in mesh.log_events("envoy")
            if event.get("path") == "/login"
        }

    wait_for(lambda: len(logged_clients()) >= 2, "Envoy logged both clients", 30)
    assert logged_clients() == {a.address, b.address}


def test_without_the_trusted_hop_every_client_is_the_proxy(edge: Edge) -> None:
    """What the setting is for: with ENVOY_TRUSTED_PROXY_HOPS=0 behind nginx, Envoy sees
    nginx as the client, and one client spends everyone's count."""
    edge.mesh.restart("envoy", {"ENVOY_TRUSTED_PROXY_HOPS": "0"})
    try:
        a = [edge.login(edge.a) for _ in range(LIMIT)]
        b = edge.login(edge.b)
    finally:
        edge.mesh.restart("envoy", {})
    print(f"\nENVOY_TRUSTED_PROXY_HOPS=0 behind nginx: A {a}, then B {b}")
    assert (a, b) == ([200] * LIMIT, 429)
