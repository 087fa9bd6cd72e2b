"""Prometheus metrics: each process serves its own at ``/metrics`` on ``METRICS_PORT``.

What every gRPC server and every queue consumer of the mesh counts lives here; what one
service counts lives beside its code (mp3mesh/gateway/servicer.py,
mp3mesh/converter/handler.py, mp3mesh/notification/handler.py, mp3mesh/shim/telemetry.py).
The gRPC names are go-grpc-prometheus' own, so the usual dashboards and alerts for gRPC
servers work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog
from prometheus_client import Counter, Histogram, disable_created_metrics, start_http_server

from mp3mesh.core.interceptors import AroundInterceptor, Rpc, recording_status
from mp3mesh.core.settings import RuntimeSettings

log = structlog.get_logger()

RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
RPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", RPC_LABELS)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    (*RPC_LABELS, "grpc_code"),
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (streams: their whole life).",
    RPC_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
# What a queue consumer did with each message: ack (handled), retry (sent to a retry
# queue after a failure), dead_letter (undecodable, or failed for the last time), requeue
# (put back at once: the consumer is stopping).
QUEUE_MESSAGES = Counter(
    "mp3mesh_queue_messages_total",
    "Messages a queue consumer settled, by outcome: ack, retry, dead_letter, requeue.",
    ("queue", "outcome"),
)


def serve(settings: RuntimeSettings) -> None:
    """Serve this process's metrics from a daemon thread; ``METRICS_PORT=0``: none."""
    if settings.metrics_port:
        disable_created_metrics()  # the *_created series only double what scrapers keep
        start_http_server(settings.metrics_port, settings.metrics_listen_host)
        log.info(
            "serving metrics", address=f"{settings.metrics_listen_host}:{settings.metrics_port}"
        )


class RpcMetricsInterceptor(AroundInterceptor):
    """Counts every call by method and status code and times it. Installed outermost
    (mp3mesh.core.grpc_server.serve), so the code is the one the client gets."""

    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        labels = (rpc.kind, rpc.service, rpc.name)
        RPC_STARTED.labels(*labels).inc()
        started = time.perf_counter()

        def handled(code: str) -> None:
            RPC_HANDLED.labels(*labels, code).inc()
            RPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)

        async with recording_status(context, handled):
            yield
