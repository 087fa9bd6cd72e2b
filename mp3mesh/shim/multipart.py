"""HTTP bodies into upload streams, one network read in memory at a time.

A body bound to a ``google.api.HttpBody`` field is never held whole: it is re-cut into
messages of ``UPLOAD_MESSAGE_BYTES`` as it arrives, raw or from the file part of a
``multipart/form-data`` body (the seed's ``curl -F file=@clip.mp4``), which
python-multipart's streaming parser finds without spooling anything to disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from google.protobuf.message import Message
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from mp3mesh.core import options
from mp3mesh.core.limits import UPLOAD_MESSAGE_BYTES
from mp3mesh.shim.errors import invalid, too_large
from mp3mesh.shim.jsonpb import descriptor_of
from mp3mesh.shim.request import FieldPath, set_option, submessage
from mp3mesh.shim.rules import FieldPathError, resolve_field_path

# The file part's name and type fill these request fields, where the request type has
# them and the query string did not set them.
MULTIPART_FIELDS = {"filename": "metadata.filename", "content_type": "metadata.content_type"}
# Form fields beside the file: the conversion options by their REST names (the query
# parameters'), before the file part. Any other field is skipped, as before. Bounds: a
# value's length and how many fields are read.
MAX_FORM_VALUE_BYTES = 1024
MAX_FORM_FIELDS = 32


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


async def upload_body(
    first: Message, content_type: str, body: AsyncIterator[bytes]
) -> tuple[str, AsyncIterator[bytes]]:
    """The upload's content type and bytes: a multipart body's file part (whose name and
    type also fill ``first``'s MULTIPART_FIELDS), or else the body as it is."""
    if not content_type.lower().startswith("multipart/form-data"):
        return content_type, body
    part = await open_file_part(content_type, body)
    apply_file_part(first, part)
    return part.content_type, part.chunks


@dataclass
class FilePart:
    """The file of a multipart body: its headers, and its bytes as they arrive."""

    filename: str
    content_type: str
    chunks: AsyncIterator[bytes]
    # The option fields that came before the file, in order: (REST name, value).
    fields: list[tuple[str, str]]


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
    return FilePart(filename, part_type, _file_chunks(reader, file_data, source), reader.fields)


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
        # The current form field (not a file): its name, and its value so far.
        self._field: str | None = None
        self._value = bytearray()
        self.fields: list[tuple[str, str]] = []

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
        disposition = parse_options_header(self._headers.get(b"content-disposition", b""))[1]
        self._in_file = b"filename" in disposition
        if not self._in_file:
            self._start_field(_text(disposition.get(b"name", b"")))
            return
        if self.file is not None:
            raise invalid("the multipart body has more than one file; send exactly one")
        part_type = self._headers.get(b"content-type", b"application/octet-stream")
        self.file = (_text(disposition[b"filename"]), _text(part_type).strip())

    def _start_field(self, name: str) -> None:
        """A form field begins: kept if it names an option (and comes before the file)."""
        if name not in options.FIELDS:
            return
        if self.file is not None:
            raise invalid(
                f"the form field {name!r} comes after the file: put option fields before"
                " the file part (e.g. -F bitrate_kbps=128 -F file=@video.mp4)"
            )
        if len(self.fields) >= MAX_FORM_FIELDS:
            raise invalid(f"the multipart body has more than {MAX_FORM_FIELDS} option fields")
        self._field = name

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._file_data.append(data[start:end])
        elif self._field is not None:
            self._value += data[start:end]
            if len(self._value) > MAX_FORM_VALUE_BYTES:
                raise invalid(
                    f"the form field {self._field!r} is longer than {MAX_FORM_VALUE_BYTES} bytes"
                )

    def _on_part_end(self) -> None:
        self._in_file = False
        if self._field is not None:
            self.fields.append((self._field, _text(bytes(self._value))))
            self._field = None
            self._value.clear()

    def _on_end(self) -> None:
        self.finished = True


def _text(header_bytes: bytes) -> str:
    """Header bytes as text: browsers and curl send UTF-8 file names."""
    try:
        return header_bytes.decode()
    except UnicodeDecodeError:
        return header_bytes.decode("latin-1")


def apply_file_part(request: Message, part: FilePart) -> None:
    """Fill the MULTIPART_FIELDS the request type has and the query left empty, and the
    option fields (a form field overrides the query parameter of its name)."""
    for name, value in part.fields:
        try:
            set_option(request, name, value)
        except FieldPathError as exc:
            raise invalid(f"the form field {name!r} does not apply here") from exc
    for attribute, path in MULTIPART_FIELDS.items():
        try:
            fields = resolve_field_path(descriptor_of(request), path)
        except FieldPathError:
            continue
        parent = submessage(request, fields[:-1])
        if not getattr(parent, fields[-1].name):
            setattr(parent, fields[-1].name, getattr(part, attribute))
