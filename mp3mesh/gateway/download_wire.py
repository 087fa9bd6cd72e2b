"""Download's messages written in their wire form, straight from the GridFS chunks.

Profiled during a 60 MB download, the gateway's CPU went to copies of the same bytes: the
chunks joined into a 1 MiB block, the block copied into an ``HttpBody``, the message
serialized (a third copy) before gRPC sent it. An ``HttpBody`` carrying audio is two
fields, so its encoding is written here around the chunks in one join, and Download's
handler is registered with a serializer that passes such bytes through (and serializes
anything else as usual). The bytes on the wire are the same; clients see no difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from mp3mesh.files.v1 import files_pb2_grpc

# Field 1 (content_type, length-delimited), then the tag of field 2 (data).
_CONTENT_TYPE, _DATA = 1, 2


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_tag(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def body_prefix(content_type: str) -> bytes:
    """The encoding of an HttpBody's content_type and of the tag of its data field."""
    encoded = content_type.encode()
    return _field_tag(_CONTENT_TYPE) + _varint(len(encoded)) + encoded + _field_tag(_DATA)


def http_bodies(chunks: list[bytes], prefix: bytes, size: int) -> Iterator[tuple[bytes, int]]:
    """The chunks as encoded HttpBody messages (``prefix``: :func:`body_prefix`) of at
    most ``size`` data bytes each (a chunk bigger is one message), each with its data
    length."""
    group: list[bytes] = []
    length = 0
    for chunk in chunks:
        if group and length + len(chunk) > size:
            yield _message(prefix, group, length), length
            group, length = [], 0
        group.append(chunk)
        length += len(chunk)
    if group:
        yield _message(prefix, group, length), length


def _message(prefix: bytes, chunks: list[bytes], length: int) -> bytes:
    return b"".join((prefix, _varint(length), *chunks))


def _serialize(message: Any) -> bytes:
    """Bytes already encoded pass through; a message is serialized."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class _Capture:
    """Stands in for the server while the generated code registers FileService."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # rebuilt from the registered handlers below

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.handlers[service] = handlers


def add_file_service(servicer: Any, server: grpc.aio.Server) -> None:
    """``add_FileServiceServicer_to_server``, with Download's serializer taking encoded
    HttpBody bytes."""
    capture = _Capture()
    files_pb2_grpc.add_FileServiceServicer_to_server(servicer, capture)
    ((service, handlers),) = capture.handlers.items()
    download = handlers["Download"]
    handlers["Download"] = grpc.unary_stream_rpc_method_handler(
        download.unary_stream,
        request_deserializer=download.request_deserializer,
        response_serializer=_serialize,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
