"""One way to run a grpc.aio server: health checking, reflection, graceful SIGTERM.

Follows grpc/grpc examples/python (health, reflection, graceful shutdown). On SIGTERM or
SIGINT the health status flips to NOT_SERVING (the readiness probe fails, Envoy's active
health checks see it), the server keeps serving for ``drain_delay`` seconds while the
load balancers take it out of rotation, then stops taking calls and gives those in
flight ``grace`` seconds to finish. Without the delay, calls a balancer sends in the
moment between the flip and its next health check would be refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mp3mesh.core import limits, tls
from mp3mesh.core.identity import CallerAuthorization
from mp3mesh.core.interceptors import AroundChain, AroundInterceptor
from mp3mesh.core.internal_errors import InternalErrorInterceptor
from mp3mesh.core.metrics import RpcMetricsInterceptor
from mp3mesh.core.settings import GrpcServerSettings
from mp3mesh.core.store_errors import StoreOutageInterceptor
from mp3mesh.core.tracing import ServerTracing

log = structlog.get_logger()

T = TypeVar("T")

# Message limits both ways, for servers and for the channels that call them.
MESSAGE_SIZE_OPTIONS = [
    ("grpc.max_receive_message_length", limits.GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", limits.GRPC_MAX_MESSAGE_BYTES),
]
# BDP probing off: it grows the HTTP/2 receive window on fast links, so when storage is
# slower than the network (GridFS writes at 30-40 MB/s on the stand-in) tens of MB of an
# upload piled up in the gateway (measured +15 to +48 MiB RSS per 55 MiB upload; with a
# fixed window, +9 MiB, steady). A fixed window makes the backpressure reach the client.
# Connections are closed (GOAWAY) after this age; calls in flight finish, new ones open a
# new connection, so round-robin callers re-resolve and spread over new pods.
MAX_CONNECTION_AGE_MS = 5 * 60_000
SERVER_OPTIONS = [
    *MESSAGE_SIZE_OPTIONS,
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


# Sent as initial metadata on a client-streaming call once the server has accepted it
# (mp3mesh.gateway.auth_interceptor, after authentication), before the handler reads. A proxy
# that waits for it before sending bytes never races a refusal: grpc.aio turns a write
# that fails because the server already answered into INTERNAL "Internal error from
# Core", losing the real status.
STREAM_ACCEPTED = ("mp3mesh-stream", "accepted")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """``context.abort``, typed as what it is: it always raises."""
    await context.abort(code, message)
    raise AssertionError("context.abort returned")


async def require_credentials(
    credentials: T | None, context: grpc.aio.ServicerContext, what_to_send: str
) -> T:
    """Credentials read from the call's metadata, or UNAUTHENTICATED saying what to send."""
    if credentials is None:
        await abort(context, grpc.StatusCode.UNAUTHENTICATED, what_to_send)
    return credentials


@dataclass(frozen=True)
class Service:
    """A servicer together with the generated function that registers it."""

    name: str  # full service name, e.g. "mp3mesh.auth.v1.AuthService"
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]


async def serve(
    services: Sequence[Service],
    address: str,
    settings: GrpcServerSettings,
    *,
    interceptors: Sequence[AroundInterceptor] = (),
    grace: float = 10.0,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    health_servicer: health.aio.HealthServicer | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return. ``settings``: what every gRPC
    server shares (GrpcServerSettings), so auth and the gateway are run alike: with TLS
    configured, mTLS (mp3mesh.core.tls), and then every call's caller is checked by its
    certificate (mp3mesh.core.identity, SPIFFE ids in the trust domain), else plaintext;
    the drain delay: how long to keep serving NOT_SERVING (a second signal cuts it
    short); the health port: a plaintext port serving the health checks alone (kubelet's
    gRPC probes speak no TLS). ``health_servicer``: one the caller also reads (a new one
    by default)."""
    credentials = tls.server_credentials(settings)
    caller_checks = [] if credentials is None else [CallerAuthorization(settings.tls_trust_domain)]
    # Metrics first, so they count the status the client gets; then the call's span, so
    # what the other interceptors do (the token check) is part of it, and an unexpected
    # error's INTERNAL answer names its trace; the store outage check last, closest to
    # the servicer, so a store outage becomes UNAVAILABLE.
    # One interceptor for grpc.aio, each method's handler wrapped once (AroundChain).
    server = grpc.aio.server(
        interceptors=[
            AroundChain(
                [
                    RpcMetricsInterceptor(),
                    ServerTracing(),
                    InternalErrorInterceptor(),
                    *caller_checks,
                    *interceptors,
                    StoreOutageInterceptor(),
                ]
            )
        ],
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    for svc in services:
        svc.add_to_server(svc.servicer, server)

    health_servicer = health_servicer or health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [svc.name for svc in services]
    if settings.reflection:
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )

    port = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    if port == 0:
        raise RuntimeError(f"cannot bind {address}")
    health_only = None
    if health_port := settings.grpc_health_port:
        health_only = grpc.aio.server(options=SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_only)
        host = address.rsplit(":", 1)[0]
        if health_only.add_insecure_port(f"{host}:{health_port}") == 0:
            raise RuntimeError(f"cannot bind {host}:{health_port}")
        await health_only.start()
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        address=address,
        services=names,
        tls=credentials is not None,
        reflection=settings.reflection,
    )

    signals = asyncio.Queue[None]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, None)
    await signals.get()

    await health_servicer.enter_graceful_shutdown()
    if (drain_delay := settings.drain_delay_seconds) > 0:
        log.info("draining: NOT_SERVING, still serving", drain_delay_seconds=drain_delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signals.get(), drain_delay)
    log.info("stopping", grace_seconds=grace)
    await server.stop(grace)
    if health_only is not None:
        await health_only.stop(0)
    if on_stop is not None:
        await on_stop()
    log.info("stopped")
