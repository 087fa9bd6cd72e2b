"""The shim's HTTP metrics: each request by method, handler and status, and its duration.

The handler is the gRPC method a transcoded request went to (set on the request's scope
by the transcoder), else the app's own route (``/healthz``...): never the raw path, whose
ids would make a new series per job.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
# The scope key under which the transcoder leaves the gRPC method a request went to.
RPC_SCOPE_KEY = "mp3mesh.rpc"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """ASGI middleware counting and timing every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            handler = _handler(scope)
            HTTP_REQUESTS.labels(method, handler, str(status)).inc()
            HTTP_SECONDS.labels(method, handler).observe(time.perf_counter() - started)


def _handler(scope: Scope) -> str:
    if rpc := scope.get(RPC_SCOPE_KEY):
        return str(rpc)
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))
