"""Receiving an upload: the client stream read, counted, hashed and checked as it is written.

The first message carries the metadata (file name, type, and optionally the size and
SHA-256 the client declares); every message may carry bytes, in ``chunk`` (gRPC
clients) or ``http_body.data`` (the REST edges). A refusal aborts the call with
INVALID_ARGUMENT or RESOURCE_EXHAUSTED; removing what was written by then is the
caller's part (``FileStore.atomic_upload``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from meshcore import gridfs_io
from meshcore.grpc_server import abort
from mp3mesh.files.v1 import files_pb2

MAX_FILENAME_LENGTH = 255
DEFAULT_FILENAME = "video"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Opens the GridFS file the video is written to, given its file name and content type.
OpenVideoFile = Callable[[str, str], gridfs_io.AsyncFileWriter]


@dataclass(frozen=True)
class ReceivedVideo:
    """A video received whole and as declared; its GridFS file is written and closed."""

    filename: str
    content_type: str
    size: int
    sha256: str


async def receive_video(
    requests: AsyncIterator[files_pb2.UploadRequest],
    context: grpc.aio.ServicerContext,
    open_file: OpenVideoFile,
    max_bytes: int,
) -> ReceivedVideo:
    """Stream the upload into a file from ``open_file``: refused past ``max_bytes``,
    hashed, checked against the declared size and SHA-256, then closed (made visible)."""
    first = await anext(requests, None)
    if first is None:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "upload is empty: send metadata, then the video's bytes",
        )
    filename, content_type = await _name_and_type(first, context)
    video_file = open_file(filename, content_type)
    digest = hashlib.sha256()
    async for block in _data_chunks(first, requests, context):
        if video_file.length + len(block) > max_bytes:
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"upload is larger than the {max_bytes} byte limit",
            )
        digest.update(block)
        await video_file.write(block)
    video = ReceivedVideo(filename, content_type, video_file.length, digest.hexdigest())
    await _check_declared(video, first.metadata, context)
    await video_file.close()
    return video


async def _name_and_type(
    first: files_pb2.UploadRequest, context: grpc.aio.ServicerContext
) -> tuple[str, str]:
    filename = first.metadata.filename or DEFAULT_FILENAME
    if len(filename) > MAX_FILENAME_LENGTH:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"filename is longer than {MAX_FILENAME_LENGTH} characters",
        )
    content_type = (
        first.metadata.content_type or first.http_body.content_type or DEFAULT_CONTENT_TYPE
    )
    return filename, content_type


async def _check_declared(
    video: ReceivedVideo, declared: files_pb2.UploadMetadata, context: grpc.aio.ServicerContext
) -> None:
    """The video is not empty, and has the size and SHA-256 the client declared, if any."""
    if video.size == 0:
        await abort(
            context, grpc.StatusCode.INVALID_ARGUMENT, "upload is empty: the video has 0 bytes"
        )
    if declared.size_bytes and declared.size_bytes != video.size:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"received {video.size} bytes but metadata.size_bytes says {declared.size_bytes}",
        )
    if declared.sha256 and declared.sha256.lower() != video.sha256:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"content SHA-256 is {video.sha256} but metadata.sha256 says {declared.sha256}",
        )


async def _data_chunks(
    first: files_pb2.UploadRequest,
    rest: AsyncIterator[files_pb2.UploadRequest],
    context: grpc.aio.ServicerContext,
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
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "metadata must come in the first message only",
            )
        request = nxt
