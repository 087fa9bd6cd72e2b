"""FileService.Download's read_offset and read_limit (ByteStream style) over native gRPC,
straight to the gateway and through Envoy: the bytes asked for, across GridFS chunk
boundaries, with the file's ETag and size in the initial metadata, and the refusals."""

from __future__ import annotations

import uuid

import grpc
import pytest

from devstack import PASSWORD, Stack, make_video
from mp3mesh.cli.client import MeshClient
from mp3mesh.core import gridfs_io
from mp3mesh.files.v1 import files_pb2

pytestmark = pytest.mark.e2e

CS = gridfs_io.CHUNK_SIZE


@pytest.fixture(scope="module")
def mp3(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, bytes]:
    """(token, MP3 id, its bytes) of a 40 s MP3: several GridFS chunks."""
    video = make_video(tmp_path_factory.mktemp("ranged-grpc") / "long.mp4", 40)
    with MeshClient(stack.auth_address, stack.gateway_address) as client:
        email = f"ranged-{uuid.uuid4().hex[:12]}@example.com"
        client.register(email, PASSWORD)
        client.token = client.login(email, PASSWORD)
        job = client.wait(client.upload(video).id)
        out = tmp_path_factory.mktemp("ranged-grpc-out") / "long.mp3"
        client.download(job.mp3_file_id, out)
        return client.token, job.mp3_file_id, out.read_bytes()


@pytest.mark.parametrize("via", ["gateway", "envoy"])
def test_read_offset_and_limit(stack: Stack, mp3: tuple[str, str, bytes], via: str) -> None:
    token, mp3_id, whole = mp3
    assert len(whole) > 2 * CS
    address = stack.gateway_address if via == "gateway" else stack.envoy_url.split("//")[1]
    with MeshClient(stack.auth_address, address, token=token) as client:

        def read(offset: int, limit: int) -> tuple[bytes, dict[str, str]]:
            call = client.files.Download(
                files_pb2.DownloadRequest(file_id=mp3_id, read_offset=offset, read_limit=limit),
                metadata=client.metadata,
            )
            data = b"".join(body.data for body in call)
            return data, dict(call.initial_metadata())

        for offset, limit in (
            (0, 0), (0, 1), (CS - 1, 2), (CS, CS), (CS + 5, 0), (len(whole) - 1, 0),
            (len(whole), 0), (7, len(whole) * 2), (2 * CS - 10, CS + 20),
        ):  # fmt: skip
            data, initial = read(offset, limit)
            stop = offset + limit if limit else None
            assert data == whole[offset:stop], (offset, limit)
            assert initial["mp3mesh-size"] == str(len(whole))
            assert initial["etag"] == f'"{mp3_id}-{len(whole)}"'

        for offset, limit, code in (
            (len(whole) + 1, 0, grpc.StatusCode.OUT_OF_RANGE),
            (-1, 0, grpc.StatusCode.INVALID_ARGUMENT),
            (0, -5, grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                read(offset, limit)
            assert refused.value.code() == code
            assert "read_" in refused.value.details()
