"""Every way a client reaches Login and Register (both edges, many spellings of each
path, native gRPC through Envoy), each from a client address of its own: what the tests
of the operation limits and bench/measure_login.py drive.

An attempt takes the source address it connects from (a 127.0.0.x loopback address, or
one routed in a test's network namespace) and returns an :class:`Answer`: native gRPC
codes are mapped to the HTTP status an edge gives for them, so all ways compare alike.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx

from devstack.config import PASSWORD
from devstack.services import ServiceStack
from devstack.tcp_proxy import TcpProxy
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY


def login_from(stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str, address: str) -> str:
    """Login as an edge calls it for a client at ``address``: "OK" or the status's name."""
    try:
        stub.Login(
            auth_pb2.LoginRequest(email=email, password=password),
            metadata=((CLIENT_ADDRESS_KEY, address),),
            timeout=120,
        )
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


def loopback_sources(first: int = 20) -> Iterator[str]:
    """Client addresses of their own on loopback (127.0.0.first, next, ...): Linux routes
    all of 127/8 to lo, so each is a distinct client to a limit keyed by address."""
    return (f"127.0.0.{n}" for n in itertools.count(first))


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; for native gRPC, the HTTP status its code maps to
    retry_after: str | None


def http_client_from(url: str, source: str) -> httpx.Client:
    """An HTTP client to ``url`` whose connections come from ``source``."""
    return httpx.Client(
        base_url=url, timeout=60, transport=httpx.HTTPTransport(local_address=source)
    )


def rest_login(
    url: str, path: str, email: str, headers: dict[str, str] | None = None
) -> Callable[[str], Answer]:
    """A login through ``path``: HTTP Basic on the seed-style paths, JSON on /v1."""

    def attempt(source: str) -> Answer:
        with http_client_from(url, source) as http:
            if "v1" in path.lower():
                reply = http.post(
                    path, json={"email": email, "password": PASSWORD}, headers=headers
                )
            else:
                reply = http.post(path, auth=(email, PASSWORD), headers=headers)
        return Answer(reply.status_code, reply.headers.get("retry-after"))

    return attempt


GRPC_TO_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


@contextmanager
def grpc_from(target: str, source: str) -> Iterator[grpc.Channel]:
    """A gRPC channel to ``target`` whose connections come from ``source``."""
    host, port = target.rsplit(":", 1)
    proxy = TcpProxy(host, int(port), source_host=source).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as channel:
            yield channel
    finally:
        proxy.stop()


def grpc_call(
    target: str, call: Callable[[auth_pb2_grpc.AuthServiceStub], object]
) -> Callable[[str], Answer]:
    """``call`` on a channel whose connections come from the source address given."""

    def attempt(source: str) -> Answer:
        with grpc_from(target, source) as channel:
            try:
                call(auth_pb2_grpc.AuthServiceStub(channel))
            except grpc.RpcError as exc:
                trailers = dict(exc.trailing_metadata() or ())
                return Answer(GRPC_TO_HTTP.get(exc.code(), 500), trailers.get("retry-after"))
        return Answer(200, None)

    return attempt


def grpc_login(
    target: str, email: str, metadata: tuple[tuple[str, str], ...] = ()
) -> Callable[[str], Answer]:
    return grpc_call(
        target,
        lambda stub: stub.Login(
            auth_pb2.LoginRequest(email=email, password=PASSWORD), metadata=metadata, timeout=60
        ),
    )


def login_variants(mesh: ServiceStack, email: str) -> dict[str, Callable[[str], Answer]]:
    envoy_grpc = f"127.0.0.1:{mesh.env['ENVOY_PORT']}"
    variants: dict[str, Callable[[str], Answer]] = {}
    paths = [
        "/login", "/login/", "/v1/sessions", "/v1/sessions/", "/LOGIN", "/Login/",
        "/V1/Sessions", "/log%69n", "/%6Cogin/", "/v1/session%73", "/v1%2Fsessions",
        "/login?", "/./login", "/static/../login",
    ]  # fmt: skip
    for edge, url in (("envoy", mesh.envoy_url), ("shim", mesh.shim_url)):
        for path in paths:
            variants[f"{edge} POST {path}"] = rest_login(url, path, email)
    variants["envoy native gRPC Login"] = grpc_login(envoy_grpc, email)
    return variants


def until_429(attempt: Callable[[str], Answer], source: str, tries: int) -> list[Answer]:
    answers = []
    for _ in range(tries):
        answers.append(attempt(source))
        if answers[-1].status == 429:
            break
    return answers


def register_rest(url: str, path: str) -> Callable[[str], Answer]:
    def attempt(source: str) -> Answer:
        email = f"reg-{uuid.uuid4().hex[:12]}@example.com"
        with http_client_from(url, source) as http:
            reply = http.post(path, json={"email": email, "password": PASSWORD})
        return Answer(reply.status_code, reply.headers.get("retry-after"))

    return attempt


def register_grpc(target: str) -> Callable[[str], Answer]:
    def register(stub: auth_pb2_grpc.AuthServiceStub) -> object:
        email = f"reg-{uuid.uuid4().hex[:12]}@example.com"
        return stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD), timeout=60)

    return grpc_call(target, register)
