"""The shim's telemetry for each HTTP request: a SERVER span, and its count and duration.

The span is the child of the caller's ``traceparent``, if it sent one, and the gRPC calls
the request makes carry it on (``RestBridge`` puts it in their metadata). Metrics and the
span name the request by its handler: the gRPC method a transcoded request went to (set
on the request's scope by the bridge), else the app's own route (``/healthz``...);
never the raw path, whose ids would make a new series per job.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mp3mesh.core import tracing

HTTP_REQUESTS = Counter(
    "mp3mesh_http_requests_total",
    "HTTP requests the shim answered, by method, handler and status.",
    ("method", "handler", "code"),
)
HTTP_SECONDS = Histogram(
    "mp3mesh_http_request_seconds",
    "Time to answer an HTTP request, the whole body included.",
    ("method", "handler"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
# The scope key under which the bridge leaves the gRPC method a request went to.
RPC_SCOPE_KEY = "mp3mesh.rpc"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes belong to no job: counted, not traced.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz"})


class HttpTelemetry:
    """ASGI middleware: a span, a count and a duration for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        spanning = (
            tracing.tracer.start_as_current_span(
                method,
                context=tracing.extract(headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method},
            )
            if scope["path"] not in UNTRACED_PATHS
            else nullcontext(INVALID_SPAN)
        )
        with spanning as span:
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                handler = _handler(scope)
                HTTP_REQUESTS.labels(method, handler, str(status)).inc()
                HTTP_SECONDS.labels(method, handler).observe(time.perf_counter() - started)
                span.update_name(f"{method} {handler}")
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def _handler(scope: Scope) -> str:
    if rpc := scope.get(RPC_SCOPE_KEY):
        return str(rpc)
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))
