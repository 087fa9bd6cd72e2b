"""Receiving an upload: the client stream read, counted, hashed and checked as it is written.

The first message carries the metadata (file name, type, and optionally the size and
SHA-256 the client declares); every message may carry bytes, in ``chunk`` (gRPC
clients) or ``http_body.data`` (the REST edges). A refusal raises :class:`UploadRefused`
rather than aborting the call: the caller first removes what was written by then
(``FileStore.atomic_upload``), then answers, so a client that has its answer finds
nothing left.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from mp3mesh.core import gridfs_io, options
from mp3mesh.core.limits import (
    MAX_CONTENT_TYPE_LENGTH,
    MAX_FILENAME_LENGTH,
    SHA256_HEX_LENGTH,
    too_long,
)
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.metrics import UPLOAD_BYTES

DEFAULT_FILENAME = "video"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class VideoSink(Protocol):
    """Where the video's bytes go: a GridFS file, or nowhere (:class:`Discard`)."""

    @property
    def length(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    async def settle(self) -> None: ...


class Discard:
    """Counts the bytes and keeps none: the body of an upload sent again under an
    idempotency key, read only to check it is the same file."""

    def __init__(self) -> None:
        self.length = 0

    async def write(self, data: bytes) -> None:
        self.length += len(data)

    async def close(self) -> None:
        return None

    async def settle(self) -> None:
        return None


# Opens the sink the video is written to, given its file name and content type.
OpenVideoFile = Callable[[str, str], VideoSink | gridfs_io.AsyncFileWriter]


class UploadRefused(Exception):
    """The upload cannot be kept; ``code`` and ``message`` are the call's answer."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReceivedVideo:
    """A video received whole and as declared; its GridFS file is written and closed."""

    filename: str
    content_type: str
    size: int
    sha256: str
    # The conversion options, checked and resolved over their preset (mp3mesh/core/options.py).
    options: files_pb2.ConversionOptions


async def receive_video(
    requests: AsyncIterator[files_pb2.UploadRequest],
    open_file: OpenVideoFile,
    max_bytes: int,
) -> ReceivedVideo:
    """Stream the upload into a file from ``open_file``: refused past ``max_bytes``,
    hashed, checked against the declared size and SHA-256, then closed (made visible)."""
    first = await anext(requests, None)
    if first is None:
        raise UploadRefused(
            grpc.StatusCode.INVALID_ARGUMENT,
            "upload is empty: send metadata, then the video's bytes",
        )
    filename, content_type = name_and_type(first)
    try:  # before the file is opened: refused options leave nothing stored
        resolved = options.resolve(first.metadata.options)
    except options.OptionError as exc:
        raise UploadRefused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    video_file = open_file(filename, content_type)
    digest = hashlib.sha256()
    try:
        async for block in _data_chunks(first, requests):
            UPLOAD_BYTES.inc(len(block))
            if video_file.length + len(block) > max_bytes:
                raise UploadRefused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"upload is larger than the {max_bytes} byte limit",
                )
            digest.update(block)
            await video_file.write(block)
        video = ReceivedVideo(
            filename, content_type, video_file.length, digest.hexdigest(), resolved
        )
        check_declared(video, first.metadata)
        await video_file.close()
    except BaseException:
        # The caller removes what was written: no insert of ours may land after that.
        await asyncio.shield(video_file.settle())
        raise
    return video


def name_and_type(first: files_pb2.UploadRequest) -> tuple[str, str]:
    """The file name and content type, each within its bound (the sha256 too, which is
    checked against the content at the end)."""
    metadata = first.metadata
    content_type = metadata.content_type or first.http_body.content_type
    # Over REST the content type is the request's Content-Type header (HttpBody's).
    type_field = "metadata.content_type" if metadata.content_type else "Content-Type"
    for field, value, limit in (
        ("metadata.filename", metadata.filename, MAX_FILENAME_LENGTH),
        (type_field, content_type, MAX_CONTENT_TYPE_LENGTH),
        ("metadata.sha256", metadata.sha256, SHA256_HEX_LENGTH),
    ):
        if message := too_long(field, value, limit):
            raise UploadRefused(grpc.StatusCode.INVALID_ARGUMENT, message)
    return metadata.filename or DEFAULT_FILENAME, content_type or DEFAULT_CONTENT_TYPE


def check_declared(video: ReceivedVideo, declared: files_pb2.UploadMetadata) -> None:
    """The video is not empty, and has the size and SHA-256 the client declared, if any."""
    if video.size == 0:
        raise UploadRefused(
            grpc.StatusCode.INVALID_ARGUMENT, "upload is empty: the video has 0 bytes"
        )
    if declared.size_bytes and declared.size_bytes != video.size:
        raise UploadRefused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"received {video.size} bytes but metadata.size_bytes says {declared.size_bytes}",
        )
    if declared.sha256 and declared.sha256.lower() != video.sha256:
        raise UploadRefused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"content SHA-256 is {video.sha256} but metadata.sha256 says {declared.sha256}",
        )


async def _data_chunks(
    first: files_pb2.UploadRequest,
    rest: AsyncIterator[files_pb2.UploadRequest],
) -> AsyncIterator[bytes]:
    """The bytes of the upload, from `chunk` (gRPC) or `http_body.data` (REST)."""
    request = first
    while True:
        data = request.chunk or request.http_body.data
        if data:
            yield data
        nxt = await anext(rest, None)
        if nxt is None:
            return
        if nxt.HasField("metadata") and nxt.metadata.ByteSize():
            raise UploadRefused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "metadata must come in the first message only",
            )
        request = nxt
