"""HTTP requests into protobuf requests, and HTTP bodies into upload streams.

A request message is filled the way grpc-gateway and Envoy fill it: the JSON body first
(``body: "*"`` or one field), then query parameters, then path variables, so the path
has the last word. A body bound to a ``google.api.HttpBody`` field is never held whole:
it is re-cut into messages of ``UPLOAD_MESSAGE_BYTES`` as it arrives, raw or from the
file part of a ``multipart/form-data`` body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.shim.errors import HttpError
from gateway.shim.jsonpb import descriptor_of
from gateway.shim.rules import FieldPathError, Route, resolve_field_path

# Bytes per upload message: one GridFS chunk's worth, well under gRPC's 4 MiB default
# message limit (and the 1 MiB the issue asks to stay under).
UPLOAD_MESSAGE_BYTES = 256 * 1024
# JSON request bodies are small (credentials); a bigger one is refused, not read.
MAX_JSON_BODY_BYTES = 1024 * 1024

# The seed's `curl -F file=@clip.mp4`: the file part's name and type fill these request
# fields, where the request type has them and the query string did not set them.
MULTIPART_FIELDS = {"filename": "metadata.filename", "content_type": "metadata.content_type"}

FieldPath = tuple[FieldDescriptor, ...]


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def too_large(max_bytes: int, what: str = "upload") -> HttpError:
    # For uploads, the gateway's RESOURCE_EXHAUSTED words, with HTTP's precise 413.
    return HttpError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{what} is larger than the {max_bytes} byte limit",
        http_status=413,
    )


def invalid(message: str) -> HttpError:
    return HttpError(grpc.StatusCode.INVALID_ARGUMENT, message)


def build_request(
    route: Route,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes = b"",
) -> Message:
    """The gRPC request for an HTTP request: body, then query parameters, then path."""
    message_type = route.method.input_type
    request = message_class(message_type)()
    if route.body and body.strip():
        _merge_json_body(request, route, body)
    for fields, values in _query_fields(message_type, query):
        set_field(request, fields, values)
    for path, value in path_params.items():
        set_field(request, resolve_field_path(message_type, path), [value])
    return request


def _query_fields(
    message_type: Descriptor, query: Iterable[tuple[str, str]]
) -> Iterable[tuple[FieldPath, list[str]]]:
    """Query values grouped by the field they name, whichever spelling named it."""
    grouped: dict[str, tuple[FieldPath, list[str]]] = {}
    for name, value in query:
        try:
            fields = resolve_field_path(message_type, name)
        except FieldPathError as exc:
            raise invalid(str(exc)) from exc
        key = ".".join(field.name for field in fields)
        grouped.setdefault(key, (fields, []))[1].append(value)
    return grouped.values()


def set_field(message: Message, fields: FieldPath, values: Sequence[str]) -> None:
    """Set the field a query parameter or path variable names, from its text form(s).

    The text goes through the proto3 JSON parser, which already knows how to read int64
    from strings, enums by name or number, bytes as base64, and Timestamps as RFC 3339.
    A singular field given several values takes the last, as Envoy does.
    """
    leaf = fields[-1]
    as_json = [_json_value(leaf, value) for value in values]
    try:
        json_format.ParseDict(
            {leaf.name: as_json if leaf.is_repeated else as_json[-1]},
            submessage(message, fields[:-1]),
        )
    except json_format.ParseError as exc:
        # Envoy's words, naming the field, the value and the type.
        name = ".".join(field.name for field in fields)
        value = ",".join(values) if leaf.is_repeated else values[-1]
        raise invalid(f'{name}: invalid value "{value}" for type {_type_name(leaf)}') from exc


def _json_value(field: FieldDescriptor, text: str) -> str | bool:
    """Text as the JSON value the parser expects: only booleans are not strings there."""
    if field.type == FieldDescriptor.TYPE_BOOL and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return f"type.googleapis.com/{field.message_type.full_name}"
    return descriptor_pb2.FieldDescriptorProto.Type.Name(field.type)  # e.g. TYPE_INT32


def submessage(message: Message, fields: FieldPath) -> Message:
    for field in fields:
        message = getattr(message, field.name)
    return message


def _merge_json_body(request: Message, route: Route, body: bytes) -> None:
    # Unknown JSON fields are ignored: Envoy's transcoder cannot reject them, and both
    # edges must answer alike.
    try:
        if route.body == "*":
            json_format.Parse(body, request, ignore_unknown_fields=True)
        else:
            leaf = route.body_fields[-1]
            json_format.ParseDict(
                {leaf.name: json.loads(body)},
                submessage(request, route.body_fields[:-1]),
                ignore_unknown_fields=True,
            )
    except (json_format.ParseError, ValueError) as exc:
        raise invalid(
            f"the request body is not valid JSON for {route.method.input_type.full_name}: {exc}"
        ) from exc


async def upload_chunks(source: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The body again, cut into ``UPLOAD_MESSAGE_BYTES`` pieces, refused past ``max_bytes``.

    Joins the server's small reads (uvicorn hands over 64 KiB at most) into fewer gRPC
    messages and splits big ones; holds one message and one read at most. Counting here
    also catches a chunked body, which has no Content-Length to check up front.
    """
    buffer = bytearray()
    total = 0
    async for data in source:
        total += len(data)
        if total > max_bytes:
            raise too_large(max_bytes)
        buffer += data
        while len(buffer) >= UPLOAD_MESSAGE_BYTES:
            yield bytes(buffer[:UPLOAD_MESSAGE_BYTES])
            del buffer[:UPLOAD_MESSAGE_BYTES]
    if buffer:
        yield bytes(buffer)


async def upload_messages(
    first: Message, body_fields: FieldPath, content_type: str, chunks: AsyncIterable[bytes]
) -> AsyncIterator[Message]:
    """The client stream: ``first`` (query fields) with the content type and the first
    bytes, then one message per chunk with only the body field's data set."""
    message = first
    submessage(message, body_fields).content_type = content_type  # type: ignore[attr-defined]
    async for chunk in chunks:
        submessage(message, body_fields).data = chunk  # type: ignore[attr-defined]
        yield message
        message = type(first)()
    if message is first:
        yield first  # an empty body: the backend says what that means


@dataclass
class FilePart:
    """The file of a multipart body: its headers, and its bytes as they arrive."""

    filename: str
    content_type: str
    chunks: AsyncIterator[bytes]


async def open_file_part(content_type: str, body: AsyncIterable[bytes]) -> FilePart:
    """Read a multipart body up to its file part's headers; the bytes follow lazily.

    python-multipart's streaming parser reports each write's data through callbacks, so
    at most one network read of the file is in memory; nothing is spooled to disk, unlike
    ``request.form()``. Form fields without a filename are skipped.
    """
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise invalid("the multipart/form-data Content-Type has no boundary")
    reader = _MultipartReader(boundary)
    source = aiter(body)
    file_data: list[bytes] = []
    while reader.file is None:
        data = await anext(source, None)
        if data is None:
            raise invalid("the multipart body has no file part: send one, e.g. -F file=@video.mp4")
        file_data = reader.feed(data)
    filename, part_type = reader.file
    return FilePart(filename, part_type, _file_chunks(reader, file_data, source))


async def _file_chunks(
    reader: _MultipartReader, file_data: list[bytes], source: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    for data in file_data:
        yield data
    async for data in source:
        for file_bytes in reader.feed(data):
            yield file_bytes
    if not reader.finished:
        raise invalid("the multipart body ended before its closing boundary")


class _MultipartReader:
    """Drives python-multipart's MultipartParser; keeps only the current part's headers
    and the file bytes of the latest write."""

    def __init__(self, boundary: bytes) -> None:
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self.file: tuple[str, str] | None = None  # filename, content type
        self.finished = False
        self._in_file = False
        self._file_data: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Parse one read; return the file bytes it held."""
        try:
            self.parser.write(data)
        except MultipartParseError as exc:
            raise invalid(f"the multipart body is malformed: {exc}") from exc
        file_data, self._file_data = self._file_data, []
        return file_data

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        options = parse_options_header(self._headers.get(b"content-disposition", b""))[1]
        self._in_file = b"filename" in options
        if not self._in_file:
            return
        if self.file is not None:
            raise invalid("the multipart body has more than one file; send exactly one")
        part_type = self._headers.get(b"content-type", b"application/octet-stream")
        self.file = (_text(options[b"filename"]), _text(part_type).strip())

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._file_data.append(data[start:end])

    def _on_part_end(self) -> None:
        self._in_file = False

    def _on_end(self) -> None:
        self.finished = True


def _text(header_bytes: bytes) -> str:
    """Header bytes as text: browsers and curl send UTF-8 file names."""
    try:
        return header_bytes.decode()
    except UnicodeDecodeError:
        return header_bytes.decode("latin-1")


def apply_file_part(request: Message, part: FilePart) -> None:
    """Fill the MULTIPART_FIELDS the request type has and the query left empty."""
    for attribute, path in MULTIPART_FIELDS.items():
        try:
            fields = resolve_field_path(descriptor_of(request), path)
        except FieldPathError:
            continue
        parent = submessage(request, fields[:-1])
        if not getattr(parent, fields[-1].name):
            setattr(parent, fields[-1].name, getattr(part, attribute))
