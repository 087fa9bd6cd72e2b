"""Upload and download of the same 60 MB over gRPC, Envoy and the shim, against raw GridFS
windowed writes and reads of it on the same MongoDB server (``mp3mesh.core.gridfs_io``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
from bson import ObjectId

from bench.core import MIB, Bench, Section, cpu_used, mb_per_s, median, timer
from mp3mesh.core import gridfs_io
from mp3mesh.files.v1 import files_pb2

ORDER = 10
SIZE = 60 * 1000 * 1000
RUNS = 3


def _raw_write(b: Bench, path: Path) -> float:
    file_id = ObjectId()
    with timer() as took, path.open("rb") as f:
        gridfs_io.write_file(b.db(), "bench", file_id, path.name, f, {})
    gridfs_io.discard(b.db(), "bench", file_id)
    return took()


def _raw_read(b: Bench, file_id: ObjectId) -> float:
    with timer() as took:
        size = sum(len(chunk) for chunk in gridfs_io.iter_file(b.db(), gridfs_io.MP3S, file_id))
    assert size == SIZE, size
    return took()


def _rest_upload(b: Bench, edge: str, token: str, path: Path) -> float:
    def body():  # type: ignore[no-untyped-def]
        with path.open("rb") as f:
            while block := f.read(MIB):
                yield block

    with timer() as took:
        reply = httpx.post(
            f"{edge}/v1/videos",
            params={"metadata.filename": path.name},
            content=body(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "video/mp4"},
            timeout=600,
        )
    reply.raise_for_status()
    return took()


def _rest_download(edge: str, token: str, file_id: ObjectId) -> float:
    size = 0
    with timer() as took, httpx.stream(
        "GET", f"{edge}/download", params={"fid": str(file_id)},
        headers={"Authorization": f"Bearer {token}"}, timeout=600,
    ) as reply:  # fmt: skip
        reply.raise_for_status()
        for block in reply.iter_raw():
            size += len(block)
    assert size == SIZE, size
    return took()


def run(b: Bench) -> Section:
    runs = 1 if b.quick else RUNS
    path = b.noise(SIZE)
    client = b.user()
    owner = client.upload(b.clip(1)).owner_id
    mp3_id = ObjectId()  # the same 60 MB, stored as the user's MP3
    with path.open("rb") as f:
        gridfs_io.write_file(
            b.db(), gridfs_io.MP3S, mp3_id, "bench.mp3", f,
            {"owner_id": owner, "content_type": "audio/mpeg"},
        )  # fmt: skip
    edges = {"Envoy": b.stack.envoy_url, "shim": b.stack.shim_url}

    def grpc_upload() -> float:
        with timer() as took:
            client.upload(path)
        return took()

    def grpc_download() -> float:
        request = files_pb2.DownloadRequest(file_id=str(mp3_id))
        with timer() as took:
            replies = client.files.Download(request, metadata=client.metadata, timeout=600)
            size = sum(len(reply.data) for reply in replies)
        assert size == SIZE, size
        return took()

    upload: dict[str, Callable[[], float]] = {
        "raw GridFS write": lambda: _raw_write(b, path),
        "gRPC": grpc_upload,
    }
    download: dict[str, Callable[[], float]] = {
        "raw GridFS read": lambda: _raw_read(b, mp3_id),
        "gRPC": grpc_download,
    }
    for name, edge in edges.items():
        upload[name] = partial(_rest_upload, b, edge, client.token, path)
        download[name] = partial(_rest_download, edge, client.token, mp3_id)
    section = Section(
        "Upload and download, 60 MB",
        [
            "direction",
            "path",
            "median s",
            "MB/s",
            "ratio to raw GridFS",
            "gateway CPU s",
            "gateway CPU s per GB",
            "MongoDB stand-in CPU s per GB",
            "bench client CPU s per GB",
        ],
    )
    per_gb = SIZE / 1e9
    for direction, paths in (("upload", upload), ("download", download)):
        rows = []
        for name, measure in paths.items():
            seconds: list[float] = []
            cpu: dict[str, list[float]] = {"gateway": [], "mongo": [], "bench client": []}
            for _ in range(runs):
                with cpu_used(b) as used:
                    seconds.append(measure())
                for process, values in cpu.items():
                    values.append(used[process])
            rows.append((name, median(seconds), {k: median(v) for k, v in cpu.items()}))
        raw = rows[0][1]
        for name, took, used in rows:
            gateway = used["gateway"] if name not in ("raw GridFS write", "raw GridFS read") else 0
            section.rows.append(
                [
                    direction,
                    name,
                    took,
                    mb_per_s(SIZE, took),
                    raw / took,
                    gateway or "",
                    gateway / per_gb if gateway else "",
                    used["mongo"] / per_gb,
                    used["bench client"] / per_gb,
                ]
            )
    section.notes.append(
        f"Median of {runs} runs each, taken path by path. Raw GridFS is `mp3mesh.core.gridfs_io`"
        " (windows of 16 chunks) from the bench process to the same server; the edges carry"
        " the raw body (`POST /v1/videos`, `GET /download`). Target: gRPC download"
        " >= 0.85x raw read, gRPC upload >= 0.9x raw write. The raw read uses the"
        " gateway's window (gridfs_io.WINDOW chunks a query), one window at a time; the"
        " gateway reads the next window while it sends one. CPU per GB: psutil on the"
        " gateway, the MongoDB stand-in (nx-27017) and the bench process (the raw paths'"
        " client, or the edges' and gRPC's client) during each run."
    )
    return section
