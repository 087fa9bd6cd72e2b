"""gRPC status to HTTP answer, in one function, as grpc-gateway and Envoy's transcoder answer.

The body is a ``google.rpc.Status`` in JSON, exactly what Envoy's ``convert_grpc_status``
sends with ``always_print_primitive_fields`` on, e.g.
``{"code":16,"message":"token has expired","details":[]}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import grpc
import structlog
from google.rpc import status_pb2
from starlette.responses import Response

from mp3mesh.core.internal_errors import INTERNAL_MESSAGE, internal_message, trace_id
from mp3mesh.shim.jsonpb import json_bytes

log = structlog.get_logger()

# gRPC's own text for a backend it could not reach ("connections to all backends failing;
# last error: UNKNOWN: ipv4:10.0.3.7:50051: Failed to connect ...") names the backend.
_CHANNEL_FAILURE = re.compile(
    r"\b(ipv4|ipv6|unix|dns):|all backends failing|failed to connect", re.I
)
BACKEND_UNREACHABLE = "the service behind this edge cannot be reached right now; try again shortly"

# grpc-gateway's HTTPStatusFromCode; Envoy's Grpc::Utility::grpcToHttpStatus is the same.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class HttpError(Exception):
    """A request the shim refuses itself; answered in the same shape as a backend's error.

    ``http_status`` overrides the table where HTTP has a more precise answer than the
    gRPC code's usual one: 413 for a body over the limit.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.headers = headers


def error_response(
    code: grpc.StatusCode,
    message: str,
    *,
    http_status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The HTTP answer for a gRPC status: the mapped HTTP code and a google.rpc.Status body."""
    body = json_bytes(status_pb2.Status(code=code.value[0], message=message))
    return Response(
        body,
        status_code=http_status or HTTP_STATUS.get(code, 500),
        media_type="application/json",
        headers=headers,
    )


# Codes whose text may be an exception's or gRPC's own, unless a mesh server wrote it.
_INTERNAL_CODES = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
)


def backend_message(exc: grpc.aio.AioRpcError) -> str:
    """The backend's message for the client; the channel's own failure text, which names
    hosts, goes to the log instead (the mesh's servers never name one), and so does any
    INTERNAL or UNKNOWN text a mesh server did not write (mp3mesh.core.internal_errors)."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNAVAILABLE and _CHANNEL_FAILURE.search(details):
        log.warning("backend unreachable", details=details)
        return BACKEND_UNREACHABLE
    if exc.code() in _INTERNAL_CODES and not details.startswith(INTERNAL_MESSAGE):
        trace = trace_id()
        log.warning("backend error", code=exc.code().name, details=details, trace_id=trace)
        return internal_message(trace)
    return details


def too_large(max_bytes: int, what: str = "upload") -> HttpError:
    """413 for a body over ``max_bytes``: for uploads, the gateway's RESOURCE_EXHAUSTED
    words, with HTTP's precise status."""
    return HttpError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{what} is larger than the {max_bytes} byte limit",
        http_status=413,
    )


def invalid(message: str) -> HttpError:
    return HttpError(grpc.StatusCode.INVALID_ARGUMENT, message)
