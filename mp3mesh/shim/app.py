"""The shim's Starlette app: every google.api.http route, ``/openapi.json``, the probes
(``/healthz``, ``/readyz``, as Envoy answers them) and the web page (``/``, ``/static/``).

Each request is matched against the routes read from the descriptors, turned into the
method's request message, and sent over a ``grpc.aio`` channel to the backend serving
that service, with a generic multicallable: the shim has no code per method.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.convertors import register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core import options, tls, tracing
from mp3mesh.core.channels import service_channel
from mp3mesh.core.client_address import CLIENT_ADDRESS_KEY
from mp3mesh.core.credentials import bearer_token
from mp3mesh.core.grpc_server import STREAM_ACCEPTED
from mp3mesh.core.internal_errors import internal_message, trace_id
from mp3mesh.core.limits import MAX_JSON_BODY_BYTES
from mp3mesh.core.revocations import RevocationFeed
from mp3mesh.core.tokens import MISSING, InvalidToken
from mp3mesh.core.verification import CannotVerify, LocalVerifier, verifier_from_auth
from mp3mesh.files.v1 import files_pb2
from mp3mesh.health.v1 import health_pb2 as mesh_health_pb2
from mp3mesh.shim.errors import HttpError, backend_message, error_response, invalid, too_large
from mp3mesh.shim.jsonpb import json_bytes
from mp3mesh.shim.multipart import upload_body, upload_chunks, upload_messages
from mp3mesh.shim.openapi import openapi_document
from mp3mesh.shim.ranges import (
    content_range,
    none_match,
    parse_range,
    range_applies,
    unsatisfied_range,
)
from mp3mesh.shim.request import build_request, message_class
from mp3mesh.shim.rules import MethodNotAllowed, NoRoute, Route, Router, routes_for
from mp3mesh.shim.settings import ShimSettings
from mp3mesh.shim.telemetry import RPC_SCOPE_KEY, HttpTelemetry
from mp3mesh.shim.tus import AnyPath, TusEndpoint
from mp3mesh.webhooks.v1 import webhooks_pb2

log = structlog.get_logger()

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
FILE_SERVICE = files_pb2.DESCRIPTOR.services_by_name["FileService"]
MESH_HEALTH_SERVICE = mesh_health_pb2.DESCRIPTOR.services_by_name["MeshHealthService"]
WEBHOOK_SERVICE = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"]
# grpc-gateway's convention: this response metadata key sets a unary answer's HTTP status.
HTTP_CODE_KEY = "x-http-code"
# GET /health when the gateway, which answers it, cannot be reached; Envoy's Lua filter
# answers the same (envoy/render.py, GATEWAY_UNREACHABLE_HEALTH).
GATEWAY_UNREACHABLE_HEALTH = mesh_health_pb2.GetMeshHealthResponse(
    status="unhealthy",
    services={FILE_SERVICE.full_name: "UNAVAILABLE", AUTH_SERVICE.full_name: "UNKNOWN"},
)

# Request headers passed on as gRPC metadata: credentials (Bearer for FileService, Basic
# for Login) and request ids. Others (Host, Content-Length...) mean nothing to gRPC. The
# trace context goes on too, as the request's own span (mp3mesh/shim/telemetry.py).
FORWARDED_HEADERS = ("authorization", "x-request-id", "idempotency-key")
# Checked without the revocations, as auth does: logging out twice is no error.
LOGOUT = AUTH_SERVICE.methods_by_name["Logout"]
USER_AUTH_METHODS = ("WhoAmI", "Logout", "ChangePassword", "DeleteAccount")
# The calls that need a user: their token is checked here, before any backend sees the
# request, as Envoy's jwt_authn does (envoy/envoy.yaml.tmpl, its rules).
USER_METHODS = frozenset(
    {
        *(method.full_name for method in FILE_SERVICE.methods),
        *(method.full_name for method in WEBHOOK_SERVICE.methods),
        *(AUTH_SERVICE.methods_by_name[name].full_name for name in USER_AUTH_METHODS),
    }
)
DOWNLOAD = FILE_SERVICE.methods_by_name["Download"]
# Download's initial metadata (protos/mp3mesh/files/v1/files.proto).
ETAG_KEY, SIZE_KEY = "etag", "mp3mesh-size"
HEALTH_TIMEOUT_SECONDS = 2.0
JSON = "application/json"
# The web page (GET /) and its files (/static/...): plain HTML, CSS and JavaScript that use
# the REST surface of the same origin. Envoy routes the same paths here.
WEB_DIR = Path(__file__).resolve().parent / "web"
# The page loads nothing from elsewhere and may not be framed.
WEB_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class RestBridge:
    """Serves the routes: HTTP request in, gRPC call out, gRPC answer back as HTTP (what
    Envoy's grpc_json_transcoder does at the other edge)."""

    def __init__(
        self,
        router: Router,
        addresses: Mapping[ServiceDescriptor, str],
        *,
        server_names: Mapping[ServiceDescriptor, str | None] | None = None,
        max_upload_bytes: int,
        call_timeout: float,
        probed: Sequence[ServiceDescriptor] = (),
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """``probed``: the services /readyz asks (default: every one in ``addresses``)."""
        self.router = router
        self.addresses = {service.full_name: address for service, address in addresses.items()}
        self.server_names = {
            service.full_name: name for service, name in (server_names or {}).items()
        }
        self.probed = [service.full_name for service in probed] or list(self.addresses)
        self.max_upload_bytes = max_upload_bytes
        self.call_timeout = call_timeout
        self.credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}
        # Checks the tokens of USER_METHODS' calls; None leaves it to the backends.
        self.verifier: LocalVerifier | None = None

    def open(self) -> None:
        """Open the channels; inside the event loop, as grpc.aio wants."""
        self._channels = {
            service: service_channel(address, self.credentials, self.server_names.get(service))
            for service, address in self.addresses.items()
        }

    def channel(self, service: ServiceDescriptor) -> grpc.aio.Channel:
        return self._channels[service.full_name]

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: Starlette routes every method to an ASGI app, only GET to a function."""
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1")
        try:
            match = self.router.match(request.method, path)
        except (NoRoute, MethodNotAllowed):
            # A wrong method on a known path answers like an unknown path, as Envoy's
            # transcoder does (it cannot tell them apart): both edges give one answer.
            return error_response(
                grpc.StatusCode.NOT_FOUND, f"Could not resolve {path} to a method."
            )
        request.scope[RPC_SCOPE_KEY] = match.route.grpc_path.lstrip("/")
        try:
            if match.route.streams_request_body:
                # Before the token, as Envoy answers: an upload over the limit is 413
                # whoever sends it.
                _refuse_declared_length_over(request, self.max_upload_bytes, "upload")
            if match.route.method.full_name in USER_METHODS:
                await self._check_token(request, revocations=match.route.method != LOGOUT)
            return await self._call(match.route, match.path_params, request)
        except HttpError as exc:
            return error_response(
                exc.code, exc.message, http_status=exc.http_status, headers=exc.headers
            )
        except grpc.aio.AioRpcError as exc:
            if match.route.method.containing_service == MESH_HEALTH_SERVICE:
                return Response(json_bytes(GATEWAY_UNREACHABLE_HEALTH), 503, media_type=JSON)
            return error_response(
                exc.code(),
                backend_message(exc),
                http_status=_error_http_code(exc),
                headers=_retry_after(exc),
            )
        except ClientDisconnect:
            log.info("client went away mid-request", path=path)
            return error_response(grpc.StatusCode.CANCELLED, "the client closed the request")
        except Exception:
            trace = trace_id()
            log.exception("unexpected error", path=path, trace_id=trace)
            return error_response(grpc.StatusCode.INTERNAL, internal_message(trace))

    async def _check_token(self, request: Request, *, revocations: bool) -> None:
        """HttpError (401, or 503 when nothing can be checked yet) unless the bearer
        token is good: in the words of the gateway and of Envoy for the same token."""
        if self.verifier is None:
            return
        token = bearer_token(request.headers.items())
        if token is None:
            raise HttpError(grpc.StatusCode.UNAUTHENTICATED, MISSING)
        try:
            await self.verifier.verify(token, revocations=revocations)
        except InvalidToken as exc:
            raise HttpError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc
        except CannotVerify as exc:
            raise HttpError(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc

    async def alive(self, _: Request) -> JSONResponse:
        """/healthz, the probe of the shim itself (Kubernetes' liveness and readiness): 200
        while it answers. Its backends are not asked, like Envoy's /healthz: with auth down
        the shim still serves reads (it checks tokens itself), and a probe that followed
        a backend would take every shim out of its Service, or restart it, on one blip."""
        return JSONResponse({"status": "SERVING"})

    async def ready(self, _: Request) -> JSONResponse:
        """/readyz: 200 when every probed backend reports SERVING over grpc.health.v1, else
        503 with each one's status: "is the whole REST surface up", for a person or a
        script waiting on the stack."""
        services = self.probed
        statuses = await asyncio.gather(*(self._backend_health(name) for name in services))
        serving = all(status == "SERVING" for status in statuses)
        return JSONResponse(
            {
                "status": "SERVING" if serving else "NOT_SERVING",
                "backends": dict(zip(services, statuses, strict=True)),
            },
            status_code=200 if serving else 503,
        )

    async def _backend_health(self, service: str) -> str:
        try:
            reply = await health_pb2_grpc.HealthStub(self._channels[service]).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def _call(self, route: Route, path_params: dict[str, str], request: Request) -> Response:
        metadata = _forwarded_metadata(request)
        query = request.query_params.multi_items()
        if route.streams_request_body:
            return await self._upload(route, path_params, query, request, metadata)
        if route.method == DOWNLOAD:
            return await self._download(route, build_request(route, path_params, query), request)
        body = await _read_json_body(request) if route.body else b""
        message = build_request(route, path_params, query, body)
        channel = self._channels[route.method.containing_service.full_name]
        if route.method.server_streaming:
            call = channel.unary_stream(route.grpc_path, **_codec(route))(
                message, metadata=metadata
            )
            return await _streaming_response(route, call)
        call = channel.unary_unary(route.grpc_path, **_codec(route))(
            message, metadata=metadata, timeout=self.call_timeout
        )
        reply = await call
        metadata = await call.initial_metadata()
        response = _response(route, reply, _http_code(metadata))
        response.headers.update(_passed_headers(metadata))
        return response

    async def _upload(
        self,
        route: Route,
        path_params: dict[str, str],
        query: Sequence[tuple[str, str]],
        request: Request,
        metadata: Sequence[tuple[str, str]],
    ) -> Response:
        """Stream the body into the client-streaming method, one chunk in memory at a time.

        The call is fed through ``write()`` rather than a request iterator: grpc.aio
        swallows an iterator's exceptions, and a 413 or a malformed multipart body found
        mid-stream has to reach the client.
        """
        # The conversion options' short names (bitrate_kbps=128) set their fields
        # (metadata.options.bitrate_kbps), as Envoy's Lua filter maps them.
        query = [(options.query_name(name), value) for name, value in query]
        first = build_request(route, path_params, query)
        content_type, body = await upload_body(
            first, request.headers.get("content-type", ""), request.stream()
        )
        messages = upload_messages(
            first, route.body_fields, content_type, upload_chunks(body, self.max_upload_bytes)
        )
        channel = self._channels[route.method.containing_service.full_name]
        call = channel.stream_unary(route.grpc_path, **_codec(route))(metadata=metadata)
        try:
            await _send_once_accepted(call, messages)
            reply = await call
        finally:
            call.cancel()  # a no-op once finished; otherwise the backend drops the upload
        return _response(route, reply)

    async def _download(self, route: Route, message: Message, request: Request) -> Response:
        """A download with HTTP ranges and validators (mp3mesh/shim/ranges.py) on top of Download.

        The call is opened with the range as far as it is known without the file's size;
        its initial metadata brings the size and the entity tag, and if the answer needs
        other bytes (a suffix range, an If-Range naming another entity) a second call asks
        for them. Only one call is ever read from.
        """
        if message.read_offset or message.read_limit:  # type: ignore[attr-defined]
            raise invalid(
                "over HTTP, ask for part of the file with a Range header"
                " (e.g. 'Range: bytes=0-99'), not readOffset or readLimit"
            )
        metadata = _forwarded_metadata(request)
        wanted = parse_range(request.headers.get("range"))
        stub = self._channels[route.method.containing_service.full_name].unary_stream(
            route.grpc_path, **_codec(route)
        )

        def open_call(offset: int, limit: int) -> grpc.aio.UnaryStreamCall:
            ask = type(message)()
            ask.CopyFrom(message)
            ask.read_offset, ask.read_limit = offset, limit  # type: ignore[attr-defined]
            return stub(ask, metadata=metadata)

        asked = wanted.guess() if wanted else (0, 0)
        call = open_call(*asked)
        try:
            entity = dict(await call.initial_metadata() or ())
            if SIZE_KEY not in entity:
                # Ended before sending anything (trailers only): the gateway says what the
                # file is in the trailers too, unless it refused the call before that.
                await call.code()
                entity = dict(await call.trailing_metadata() or ())
            etag, size = str(entity.get(ETAG_KEY, "")), str(entity.get(SIZE_KEY, ""))
            if not etag or not size.isdigit():
                # Refused before any metadata (no such file, bad token): the status says why.
                return await _streaming_response(route, call)
            headers = {"accept-ranges": "bytes", "etag": etag}
            if none_match(request.headers.get("if-none-match"), etag):
                call.cancel()
                return Response(status_code=304, headers=headers)
            length, status, span = int(size), 200, (0, int(size))
            if wanted is not None and range_applies(request.headers.get("if-range"), etag):
                resolved = wanted.resolve(length)
                if resolved is None:
                    call.cancel()
                    headers["content-range"] = unsatisfied_range(length)
                    return error_response(
                        grpc.StatusCode.OUT_OF_RANGE,
                        f"the range {request.headers['range']!r} is not within the"
                        f" {length} byte file",
                        http_status=416,
                        headers=headers,
                    )
                status, span = 206, resolved
                headers["content-range"] = content_range(*span, length)
            sent_stop = length if asked[1] == 0 else min(asked[0] + asked[1], length)
            if (asked[0], sent_stop) != span:
                call.cancel()
                call = open_call(span[0], span[1] - span[0])
        except BaseException:
            call.cancel()
            raise
        headers["content-length"] = str(span[1] - span[0])
        response = await _streaming_response(route, call)
        response.status_code = status
        response.headers.update(headers)
        return response


async def _send_once_accepted(
    call: grpc.aio.StreamUnaryCall, messages: AsyncIterator[Message]
) -> None:
    """Write ``messages`` into ``call``, but not a byte before the backend accepts it.

    A refusal (bad token) then reaches the client with its own status: see
    mp3mesh.core.grpc_server.STREAM_ACCEPTED. A backend that ends the call early makes the
    writes fail; awaiting the call afterwards raises its real status.
    """
    if STREAM_ACCEPTED not in tuple(await call.initial_metadata()):
        return
    try:
        async for message in messages:
            await call.write(message)
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass


def _codec(route: Route) -> dict[str, Callable[..., Any]]:
    return {
        "request_serializer": message_class(route.method.input_type).SerializeToString,
        "response_deserializer": message_class(route.method.output_type).FromString,
    }


def _forwarded_metadata(request: Request) -> list[tuple[str, str]]:
    metadata = [
        (name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers
    ]
    metadata.extend(tracing.carrier().items())
    if request.client is not None:
        # The connection's address (uvicorn runs without proxy headers): auth counts
        # logins and registrations per address.
        metadata.append((CLIENT_ADDRESS_KEY, request.client.host))
    return metadata


PASSED_RESPONSE_HEADERS = frozenset({"cache-control"})


def _error_http_code(exc: grpc.aio.AioRpcError) -> int | None:
    """The HTTP status a backend's error asks for with ``x-http-code`` (a 4xx more precise
    than the code's usual one: 409 for a job in the wrong state), as Envoy's Lua filter
    applies it; else None, the table's."""
    for key, value in exc.trailing_metadata() or ():
        if key == HTTP_CODE_KEY and isinstance(value, str) and value.isdigit():
            return int(value) if 400 <= int(value) < 500 else None
    return None


def _retry_after(exc: grpc.aio.AioRpcError) -> dict[str, str] | None:
    """A backend's ``retry-after`` trailer (auth's login throttle) as the HTTP header."""
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after" and isinstance(value, str) and value.isdigit():
            return {"retry-after": value}
    return None


def _refuse_declared_length_over(request: Request, max_bytes: int, what: str) -> None:
    """413 on the Content-Length alone, before a byte of the body is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes, what)


async def _read_json_body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_JSON_BODY_BYTES instead of read into memory."""
    _refuse_declared_length_over(request, MAX_JSON_BODY_BYTES, "request body")
    body = bytearray()
    async for data in request.stream():
        body += data
        if len(body) > MAX_JSON_BODY_BYTES:
            raise too_large(MAX_JSON_BODY_BYTES, "request body")
    return bytes(body)


def _http_code(metadata: grpc.aio.Metadata | None) -> int:
    """The HTTP status a unary answer asks for with ``x-http-code``, else 200."""
    code = str(dict(metadata or ()).get(HTTP_CODE_KEY, ""))
    return int(code) if code.isdigit() and 200 <= int(code) < 600 else 200


def _passed_headers(metadata: grpc.aio.Metadata | None) -> dict[str, str]:
    """Response headers a backend sets as metadata (auth's cache-control on the JWKS),
    passed on as Envoy's transcoder passes them."""
    return {
        key: value
        for key, value in (metadata or ())
        if key in PASSED_RESPONSE_HEADERS and isinstance(value, str)
    }


def _response(route: Route, reply: Message, status: int = 200) -> Response:
    if route.returns_http_body:
        return Response(reply.data, status, media_type=reply.content_type or None)  # type: ignore[attr-defined]
    return Response(json_bytes(reply), status, media_type=JSON)


async def _streaming_response(route: Route, call: grpc.aio.UnaryStreamCall) -> Response:
    """Raw bytes for an HttpBody stream, newline-delimited JSON otherwise.

    The first message is awaited before answering, so an error the backend raises up
    front (bad id, no such file) still becomes a proper HTTP status.
    """
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if route.returns_http_body:
        media_type = getattr(first, "content_type", "") or "application/octet-stream"  # EOF: none
        return StreamingResponse(_relay(call, first, lambda body: body.data), media_type=media_type)
    return StreamingResponse(
        _relay(call, first, lambda msg: json_bytes(msg) + b"\n"), media_type=JSON
    )


async def _relay(
    call: grpc.aio.UnaryStreamCall, first: Any, encode: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    """The stream's messages as body pieces. A failure half-way raises, so the server
    breaks the connection and a cut-off download cannot pass for a whole one."""
    try:
        message = first
        while message is not grpc.aio.EOF:
            yield encode(message)
            message = await call.read()
    except grpc.aio.AioRpcError as exc:
        log.warning("stream failed half-way", code=exc.code().name, details=exc.details())
        raise
    finally:
        call.cancel()


def create_app(settings: ShimSettings) -> Starlette:
    services = (AUTH_SERVICE, FILE_SERVICE, WEBHOOK_SERVICE, MESH_HEALTH_SERVICE)
    routes = [route for service in services for route in routes_for(service)]
    bridge = RestBridge(
        Router(routes),
        {
            AUTH_SERVICE: settings.auth_address,
            FILE_SERVICE: settings.gateway_address,
            WEBHOOK_SERVICE: settings.gateway_address,
            MESH_HEALTH_SERVICE: settings.gateway_address,
        },
        server_names={
            AUTH_SERVICE: settings.auth_tls_name,
            FILE_SERVICE: settings.gateway_tls_name,
            WEBHOOK_SERVICE: settings.gateway_tls_name,
            MESH_HEALTH_SERVICE: settings.gateway_tls_name,
        },
        max_upload_bytes=settings.max_upload_bytes,
        call_timeout=settings.call_timeout_seconds,
        probed=(AUTH_SERVICE, FILE_SERVICE),
        credentials=tls.channel_credentials(settings),
    )
    document = openapi_document(routes)

    async def check_user_token(request: Request) -> None:
        await bridge._check_token(request, revocations=True)

    register_url_convertor("tus_path", AnyPath())
    tus = TusEndpoint(
        lambda: bridge.channel(FILE_SERVICE),
        check_user_token,
        _forwarded_metadata,
        max_upload_bytes=settings.max_upload_bytes,
        call_timeout=settings.call_timeout_seconds,
    )

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(document)

    async def web_page(_: Request) -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers=WEB_PAGE_HEADERS)

    async def player_worker(_: Request) -> FileResponse:
        """The page's service worker (it gives the audio player the token), at the root so
        that its scope is the whole origin."""
        return FileResponse(WEB_DIR / "sw.js", headers=WEB_PAGE_HEADERS)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        bridge.open()
        revocations: RevocationFeed | None = None
        try:
            bridge.verifier, revocations = await verifier_from_auth(
                settings, bridge.channel(AUTH_SERVICE)
            )
            yield
        finally:
            if revocations is not None:
                await asyncio.to_thread(revocations.close)
            await bridge.close()

    return Starlette(
        routes=[
            StarletteRoute("/openapi.json", openapi, methods=["GET"]),
            StarletteRoute("/healthz", bridge.alive, methods=["GET"]),
            StarletteRoute("/readyz", bridge.ready, methods=["GET"]),
            StarletteRoute("/", web_page, methods=["GET", "HEAD"]),
            StarletteRoute("/sw.js", player_worker, methods=["GET", "HEAD"]),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
            # Resumable uploads (tus 1.0), every method: mp3mesh/shim/tus.py.
            StarletteRoute("/files/{rest:tus_path}", tus),
            # Everything else, any method: the bridge answers 404 and 405 itself.
            StarletteRoute("/{path:path}", bridge),
        ],
        middleware=[Middleware(HttpTelemetry)],
        lifespan=lifespan,
    )
