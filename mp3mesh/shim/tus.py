"""Resumable uploads over the tus 1.0 protocol at ``/files/``, on the gateway's resumable
gRPC upload (mp3mesh/gateway/resumable.py). Envoy routes ``/files/`` here, so both edges answer
alike (docs/uploads.md).

tus request -> gRPC call:

- ``OPTIONS /files/``: answered here (versions, extensions, limit); also the browser's
  CORS preflight. No token needed, as tus servers do.
- ``POST /files/`` (creation): StartResumableUpload; 201 with ``Location: /files/<id>``.
  Upload-Metadata gives the file name (``filename``), type (``filetype``) and conversion
  options (their REST names, as query parameters elsewhere: ``bitrate_kbps`` ...).
- ``HEAD /files/<id>``: QueryResumableUpload; ``Upload-Offset`` is the committed size.
- ``PATCH /files/<id>``: WriteResumableUpload, the body streamed in as it arrives; a cut
  request keeps what the gateway committed. ``Upload-Checksum: sha1 <base64>`` (checksum)
  is checked by the gateway over the request's bytes, all kept or none.
- ``DELETE /files/<id>`` (termination): CancelResumableUpload.

Once the last byte is in, the PATCH's answer and every HEAD carry ``Mp3mesh-Job-Id``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message
from starlette.convertors import Convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mp3mesh.core import options
from mp3mesh.core.grpc_server import STREAM_ACCEPTED
from mp3mesh.files.v1 import files_pb2
from mp3mesh.shim.errors import HttpError, backend_message, error_response, invalid, too_large
from mp3mesh.shim.multipart import upload_chunks
from mp3mesh.shim.request import set_option

log = structlog.get_logger()

PREFIX = "/files/"
TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = "sha1"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
JOB_ID_HEADER = "Mp3mesh-Job-Id"
# Upload-Metadata keys that are UploadMetadata fields; any other is kept as it came
# (ResumableUpload.extra_metadata), and those that name a conversion option set it too.
METADATA_FIELDS = {"filename": "filename", "filetype": "content_type"}
SERVICE = "/mp3mesh.files.v1.FileService/"

# What a page of another origin needs to use /files/ (tus-js-client reads these). The
# token is a header, never a cookie, so allowing any origin grants nothing by itself.
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": ", ".join(
        (
            "Location",
            "Upload-Offset",
            "Upload-Length",
            "Upload-Expires",
            "Upload-Metadata",
            "Tus-Resumable",
            "Tus-Version",
            "Tus-Extension",
            "Tus-Max-Size",
            "Tus-Checksum-Algorithm",
            JOB_ID_HEADER,
        )
    ),
}
PREFLIGHT_HEADERS = {
    "access-control-allow-methods": "POST, HEAD, PATCH, DELETE, OPTIONS",
    "access-control-allow-headers": ", ".join(
        (
            "Authorization",
            "Content-Type",
            "Tus-Resumable",
            "Upload-Length",
            "Upload-Offset",
            "Upload-Metadata",
            "Upload-Checksum",
            "X-Request-Id",
        )
    ),
    "access-control-max-age": "86400",
}

# gRPC codes whose tus answer differs from grpc-gateway's table (mp3mesh/shim/errors.py).
TUS_HTTP_STATUS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,  # refined below: 429 for "too many"
    grpc.StatusCode.OUT_OF_RANGE: 413,  # the write goes past Upload-Length
    grpc.StatusCode.DATA_LOSS: 460,  # checksum mismatch (tus checksum extension)
}


class TusEndpoint:
    """The ``/files/`` routes. ``check_token`` raises HttpError (401/503) for a bad
    token; ``forwarded_metadata`` is the gRPC metadata of a request (mp3mesh/shim/app.py)."""

    def __init__(
        self,
        channel: Callable[[], grpc.aio.Channel],
        check_token: Callable[[Request], Awaitable[None]],
        forwarded_metadata: Callable[[Request], list[tuple[str, str]]],
        *,
        max_upload_bytes: int,
        call_timeout: float,
    ) -> None:
        self.channel = channel
        self.check_token = check_token
        self.forwarded_metadata = forwarded_metadata
        self.max_upload_bytes = max_upload_bytes
        self.call_timeout = call_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        try:
            response = await self._dispatch(request)
        except HttpError as exc:
            response = error_response(
                exc.code, exc.message, http_status=exc.http_status, headers=exc.headers
            )
        except grpc.aio.AioRpcError as exc:
            response = _grpc_error(exc)
        except ClientDisconnect:
            log.info("tus client went away mid-request", path=request.url.path)
            response = error_response(grpc.StatusCode.CANCELLED, "the client closed the request")
        response.headers["tus-resumable"] = TUS_VERSION
        response.headers.update(CORS_HEADERS)
        if request.method == "HEAD":  # headers only, whatever the answer
            return Response(status_code=response.status_code, headers=dict(response.headers))
        return response

    async def _dispatch(self, request: Request) -> Response:
        path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        upload_id = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        method = request.method
        known = (
            method == "OPTIONS"
            or (method == "POST" and not upload_id)
            or (method in ("HEAD", "PATCH", "DELETE") and upload_id and "/" not in upload_id)
        )
        if not known:
            # As the bridge answers an unknown path or method (and Envoy's transcoder).
            raise HttpError(grpc.StatusCode.NOT_FOUND, f"Could not resolve {path} to a method.")
        if method == "OPTIONS":
            return self._options()
        await self.check_token(request)
        metadata = self.forwarded_metadata(request)
        if method == "POST":
            return await self._create(request, metadata)
        if method == "HEAD":
            _check_version(request)
            return await self._head(upload_id, metadata)
        if method == "PATCH":
            return await self._patch(upload_id, request, metadata)
        _check_version(request)
        return await self._delete(upload_id, metadata)

    def _options(self) -> Response:
        return Response(
            status_code=204,
            headers={
                "tus-version": TUS_VERSION,
                "tus-extension": EXTENSIONS,
                "tus-max-size": str(self.max_upload_bytes),
                "tus-checksum-algorithm": CHECKSUM_ALGORITHMS,
                **PREFLIGHT_HEADERS,
            },
        )

    async def _unary(
        self, method: str, message: Message, metadata: Sequence[tuple[str, str]]
    ) -> Any:
        stub = self.channel().unary_unary(
            SERVICE + method,
            request_serializer=type(message).SerializeToString,
            response_deserializer=_RESPONSES[method].FromString,
        )
        return await stub(message, metadata=metadata, timeout=self.call_timeout)

    async def _create(self, request: Request, metadata: Sequence[tuple[str, str]]) -> Response:
        if "upload-defer-length" in request.headers:
            raise invalid("Upload-Defer-Length is not supported: send Upload-Length")
        total = _non_negative(request.headers.get("upload-length"), "Upload-Length")
        if total > self.max_upload_bytes:
            raise too_large(self.max_upload_bytes)
        start = start_request(request.headers.get("upload-metadata", ""), total)
        _check_version(request)
        reply = await self._unary("StartResumableUpload", start, metadata)
        return Response(
            status_code=201,
            headers={"location": PREFIX + reply.upload.upload_id, **_state(reply.upload)},
        )

    async def _head(self, upload_id: str, metadata: Sequence[tuple[str, str]]) -> Response:
        reply = await self._unary(
            "QueryResumableUpload",
            files_pb2.QueryResumableUploadRequest(upload_id=upload_id),
            metadata,
        )
        upload = reply.upload
        headers = {
            **_state(upload),
            "upload-length": str(upload.total_size),
            "cache-control": "no-store",
        }
        if encoded := encode_metadata(upload):
            headers["upload-metadata"] = encoded
        return Response(status_code=200, headers=headers)

    async def _patch(
        self, upload_id: str, request: Request, metadata: Sequence[tuple[str, str]]
    ) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            raise HttpError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a PATCH body must be sent as Content-Type: {OFFSET_CONTENT_TYPE}",
                http_status=415,
            )
        offset = _non_negative(request.headers.get("upload-offset"), "Upload-Offset")
        checksum = parse_checksum(request.headers.get("upload-checksum"))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_upload_bytes:
            raise too_large(self.max_upload_bytes)
        _check_version(request)
        # Asked first: a write the gateway refuses after accepting the stream can reach
        # this side as INTERNAL instead of its status (mp3mesh/core/grpc_server.py,
        # STREAM_ACCEPTED), and a tus client asks HEAD before PATCH anyway.
        upload = (
            await self._unary(
                "QueryResumableUpload",
                files_pb2.QueryResumableUploadRequest(upload_id=upload_id),
                metadata,
            )
        ).upload
        if offset != upload.committed_size:
            raise HttpError(
                grpc.StatusCode.ABORTED,
                f"Upload-Offset {offset} is not where the upload is: {upload.committed_size}"
                " bytes are committed; write from there",
            )
        if upload.committed_size == upload.total_size:
            return Response(status_code=204, headers=_state(upload))
        call = self.channel().stream_unary(
            SERVICE + "WriteResumableUpload",
            request_serializer=files_pb2.WriteResumableUploadRequest.SerializeToString,
            response_deserializer=files_pb2.WriteResumableUploadResponse.FromString,
        )(metadata=metadata)
        first = files_pb2.WriteResumableUploadRequest(
            upload_id=upload_id, write_offset=offset, checksum_sha1=checksum
        )
        try:
            await _write_once_accepted(
                call, first, upload_chunks(request.stream(), self.max_upload_bytes)
            )
            reply = await call
        finally:
            call.cancel()  # a no-op once finished; otherwise the gateway keeps what it has
        return Response(status_code=204, headers=_state(reply.upload))

    async def _delete(self, upload_id: str, metadata: Sequence[tuple[str, str]]) -> Response:
        await self._unary(
            "CancelResumableUpload",
            files_pb2.CancelResumableUploadRequest(upload_id=upload_id),
            metadata,
        )
        return Response(status_code=204)


_RESPONSES: dict[str, type[Message]] = {
    "StartResumableUpload": files_pb2.StartResumableUploadResponse,
    "QueryResumableUpload": files_pb2.QueryResumableUploadResponse,
    "CancelResumableUpload": files_pb2.CancelResumableUploadResponse,
}


async def _write_once_accepted(
    call: grpc.aio.StreamUnaryCall,
    first: files_pb2.WriteResumableUploadRequest,
    chunks: AsyncIterator[bytes],
) -> None:
    """The write's messages, sent once the gateway accepted the call (STREAM_ACCEPTED),
    so a refusal reaches the client with its own status; a gateway that answered early
    (a wrong offset) makes the writes fail, and awaiting the call gives its status."""
    if STREAM_ACCEPTED not in tuple(await call.initial_metadata()):
        return
    try:
        await call.write(first)
        async for chunk in chunks:
            await call.write(files_pb2.WriteResumableUploadRequest(data=chunk))
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass


def _check_version(request: Request) -> None:
    """412 unless the client speaks this tus version; checked once the request's own
    headers were found well formed (a malformed request is 400 whatever its version)."""
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise HttpError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"send 'Tus-Resumable: {TUS_VERSION}': this server speaks tus {TUS_VERSION}",
            http_status=412,
            headers={"tus-version": TUS_VERSION},
        )


class AnyPath(Convertor[str]):
    """A path remainder, line breaks included (Starlette's ``path`` stops at one), so an
    odd upload id still reaches the tus endpoint and gets its JSON answer."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def _state(upload: files_pb2.ResumableUpload) -> dict[str, str]:
    """The headers every answer about an upload carries."""
    headers = {
        "upload-offset": str(upload.committed_size),
        "upload-expires": http_date(upload.expire_time.ToDatetime(dt.UTC)),
    }
    if upload.job_id:
        headers[JOB_ID_HEADER.lower()] = upload.job_id
    return headers


def http_date(when: dt.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def _grpc_error(exc: grpc.aio.AioRpcError) -> Response:
    code = exc.code()
    status = TUS_HTTP_STATUS.get(code)
    message = backend_message(exc)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" not in message:
        status = None  # too many uploads at once: 429, as elsewhere
    if code == grpc.StatusCode.DATA_LOSS:
        message = exc.details() or "checksum mismatch"  # the gateway's own words
    return error_response(code, message, http_status=status)


def _non_negative(value: str | None, header: str) -> int:
    if value is None or not value.isdigit() or len(value) > 19:
        raise invalid(f"{header} must be a non-negative integer")
    return int(value)


def parse_metadata(header: str) -> tuple[dict[str, str], dict[str, str]]:
    """Upload-Metadata (``key base64value,key2 ...``): the UploadMetadata fields it names,
    and the other pairs."""
    fields: dict[str, str] = {}
    extra: dict[str, str] = {}
    seen: set[str] = set()
    for pair in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = pair.partition(" ")
        if not key or key in seen or " " in encoded.strip():
            raise invalid("Upload-Metadata must be 'key base64value' pairs, each key once")
        seen.add(key)
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            raise invalid(
                f"Upload-Metadata {key!r}: the value is not base64 of UTF-8 text"
            ) from None
        if key in METADATA_FIELDS:
            fields[METADATA_FIELDS[key]] = value
        else:
            extra[key] = value
    return fields, extra


def start_request(header: str, total: int) -> files_pb2.StartResumableUploadRequest:
    """StartResumableUpload's request for a POST's Upload-Metadata: the conversion options'
    keys (``bitrate_kbps``, ``preset``, ...) set the options, read as their query
    parameters are (400 for a value that is no number, say); the gateway checks their
    ranges. Every key but filename and filetype is also kept as it came, so HEAD gives
    back the Upload-Metadata sent, as tus asks."""
    fields, extra = parse_metadata(header)
    start = files_pb2.StartResumableUploadRequest(
        metadata=files_pb2.UploadMetadata(
            filename=fields.get("filename", ""), content_type=fields.get("content_type", "")
        ),
        total_size=total,
        extra_metadata=extra,
    )
    for key, value in extra.items():
        if key in options.FIELDS:
            set_option(start, key, value)
    return start


def encode_metadata(upload: files_pb2.ResumableUpload) -> str:
    pairs = [
        ("filename", upload.metadata.filename),
        ("filetype", upload.metadata.content_type),
        *sorted(upload.extra_metadata.items()),
    ]
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs)


def parse_checksum(header: str | None) -> bytes:
    """Upload-Checksum (``sha1 <base64 digest>``): the digest, or b"" without the header."""
    if header is None:
        return b""
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() != "sha1":
        raise invalid(f"Upload-Checksum: only {CHECKSUM_ALGORITHMS} is supported")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error, or not ASCII
        raise invalid("Upload-Checksum: the digest is not base64") from None
    if len(digest) != 20:
        raise invalid("Upload-Checksum: a SHA-1 digest has 20 bytes")
    return digest
