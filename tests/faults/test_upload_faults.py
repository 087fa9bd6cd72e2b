"""A gateway that dies mid-upload while another gateway receives an upload of its own:
housekeeping tells them apart by their heartbeats (mp3mesh/gateway/store.py, upload marks)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from bson import ObjectId

from devstack import PASSWORD, ServiceStack, free_port, make_long_audio_video, wait_for
from mp3mesh.cli.client import MeshClient, upload_requests
from mp3mesh.core import gridfs_io
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.store import UPLOADS
from tests.faults.helpers import Tally, assert_converted_once

pytestmark = pytest.mark.faults


def slowly(video: Path, pause: float, at: int = -1, then=None) -> Iterator[files_pb2.UploadRequest]:  # type: ignore[no-untyped-def]
    """The upload's messages, ``pause`` seconds apart; ``then()`` runs before message ``at``."""
    for n, request in enumerate(upload_requests(video)):
        if n == at:
            then()
        time.sleep(pause)
        yield request


@pytest.fixture(scope="module")
def sixty_mb_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 60 MB (long audio, as tests/conftest.py's long_video, three times longer)."""
    path = make_long_audio_video(tmp_path_factory.mktemp("60mb") / "long.avi", 7560)
    assert 55e6 < path.stat().st_size < 65e6, path.stat().st_size
    return path


def test_a_gateway_killed_mid_upload_leaves_no_chunk_and_spares_another_gateways_upload(
    mesh: ServiceStack, tally: Tally, long_video: Path, sixty_mb_video: Path
) -> None:
    """SIGKILL halfway through a slow 60 MB upload; meanwhile another gateway receives an
    upload of its own."""
    second = f"127.0.0.1:{free_port()}"
    mesh.start_another(
        "gateway-b", like="gateway", env={"GATEWAY_LISTEN": second, "GATEWAY_METRICS_PORT": "0"}
    )
    try:
        client, email = mesh.new_account()
        other = MeshClient(mesh.env["AUTH_LISTEN"], second)
        mesh.clients.append(other)
        other.login(email, PASSWORD)
        marks = mesh.db()[UPLOADS]
        killed_at: list[float] = []

        def kill() -> None:
            mesh.send("gateway", signal.SIGKILL)
            killed_at.append(time.monotonic())

        with ThreadPoolExecutor(2) as pool:
            dying = pool.submit(
                client.files.Upload, slowly(sixty_mb_video, 0.05, at=115, then=kill),
                metadata=client.metadata, timeout=120,
            )  # fmt: skip
            wait_for(lambda: len(list(marks.find())) == 1, "the first upload's mark", 30)
            [orphan] = [m["_id"] for m in marks.find()]
            # Long enough that housekeeping watches it for more than a lease (10 s).
            living = pool.submit(
                other.files.Upload, slowly(long_video, 0.3),
                metadata=other.metadata, timeout=120,
            )  # fmt: skip
            with pytest.raises(grpc.RpcError):
                dying.result()
            mesh.wait_exit("gateway")
            mesh.start("gateway")
            chunks = mesh.db()[f"{gridfs_io.VIDEOS}.chunks"]
            wait_for(lambda: chunks.find_one({"files_id": ObjectId(orphan)}, {"n": 1}) is None,
                     "the dead gateway's chunks removed", timeout=120)  # fmt: skip
            removed_after = time.monotonic() - killed_at[0]
            uploaded = living.result()
        print(f"the killed upload's chunks were gone {removed_after:.1f} s after the kill")
        job_id = tally.submitted(uploaded.job.id)
        assert_converted_once(mesh, other.wait(job_id, timeout=300), attempts=1)
    finally:
        mesh.stop("gateway-b")
