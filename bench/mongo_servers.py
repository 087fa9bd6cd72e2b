"""The MongoDB server under GetJob's read, side by side in one run: the stand-in the mesh
runs (nx-27017, Python on SQLite) and FerretDB, a MongoDB-compatible server in Go, on its
PostgreSQL backend (the project's cluster, a database of its own) and its SQLite one.
What part of GetJob's floor row is the stand-in's rather than the wire's and pymongo's.

Not in the default run (``python -m bench mongo_servers``): it measures servers, not the
mesh, and its first run builds FerretDB (scripts/ferretdb_build.sh, about a minute)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bench.core import Bench, Section, percentile
from devstack import ROOT, free_port, temp_database, wait_for, with_password
from mp3mesh.core import jobs

ORDER = 45
DEFAULT = False
WARM_UP = 20
ROUNDS = 10
# Jobs of other owners in the collection, so the read is not from a collection of one.
OTHER_JOBS = 200
# FerretDB on SQLite spends about 20 ms of CPU on GetJob's read: it gets a tenth of the calls.
SQLITE_SHARE = 10


def ferretdb_binary() -> Path:
    """FerretDB at the pinned version (bench/ghz.env), built once into the user's cache."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "ferretdb_build.sh")], capture_output=True, text=True, check=True
    )
    return Path(built.stdout.strip().splitlines()[-1])


def _job(owner_id: str) -> dict[str, Any]:
    return jobs.new_job(
        job_id=ObjectId(), owner_id=owner_id, owner_email=f"{owner_id}@example.com",
        filename="clip-1s.mp4", size=123_456, sha256="ab" * 32,
    )  # fmt: skip


class Server:
    """One server process on a free loopback port, with a client and the collection of
    jobs the reads go to (its rows make 1/``share`` of the calls); its CPU is its
    process's, plus the PostgreSQL backends serving its database when ``database`` is set."""

    def __init__(
        self, name: str, argv: list[str], port: int, log: Path, database: str = "", share: int = 1
    ) -> None:
        self.name, self.database, self.share = name, database, share
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            f"mongodb://127.0.0.1:{port}", timeoutMS=10_000, serverSelectionTimeoutMS=1000
        )
        wait_for(self._serving, f"{name} serving on port {port}", timeout=60)
        self.jobs = self.client["mp3mesh_bench"]["jobs"]
        for field in jobs.INDEXED:
            self.jobs.create_index(field)
        self.jobs.insert_many([_job(f"other-{i}") for i in range(OTHER_JOBS)])
        record = _job("owner")
        self.jobs.insert_one(record)
        self.by_id = {"_id": record["_id"]}
        self.owned = jobs.owned("owner", record["_id"])

    def _serving(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def cpu(self) -> float:
        used = sum(psutil.Process(self.process.pid).cpu_times()[:2])
        if self.database:
            for p in psutil.process_iter(["cmdline"]):
                if self.database in " ".join(p.info["cmdline"] or []):
                    try:
                        used += sum(p.cpu_times()[:2])
                    except psutil.NoSuchProcess:
                        continue
        return used

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(15)


@contextmanager
def servers(work: Path) -> Iterator[list[Server]]:
    ferretdb = ferretdb_binary()
    quiet = ["--telemetry=disable", "--state-dir=-", "--debug-addr=-", "--log-level=WARN"]
    with ExitStack() as stack:
        started: list[Server] = []

        def start(
            name: str, argv: list[str], port: int, database: str = "", share: int = 1
        ) -> None:
            log = work / f"{name.split()[0].lower()}-{port}.log"
            started.append(Server(name, argv, port, log, database, share))
            stack.callback(started[-1].stop)

        data = work / f"nx-27017-{os.getpid()}"
        data.mkdir()
        port = free_port()
        start("nx-27017 (the stand-in)",
              [str(ROOT / ".venv/bin/nx-27017"), "--data-dir", str(data), "--host", "127.0.0.1",
               "--port", str(port), "--log-file", str(data / "nx.log"),
               "--pid-file", str(data / "nx.pid")], port)  # fmt: skip
        url = stack.enter_context(temp_database("mp3mesh_ferretdb"))
        postgresql = with_password(url, urlsplit(url).port or 5432)
        port = free_port()
        start("FerretDB, PostgreSQL",
              [str(ferretdb), "--handler=postgresql", f"--postgresql-url={postgresql}",
               f"--listen-addr=127.0.0.1:{port}", *quiet],
              port, database=url.rsplit("/", 1)[1])  # fmt: skip
        sqlite = work / f"ferretdb-sqlite-{os.getpid()}"
        sqlite.mkdir()
        port = free_port()
        start("FerretDB, SQLite",
              [str(ferretdb), "--handler=sqlite", f"--sqlite-url=file:{sqlite}/",
               f"--listen-addr=127.0.0.1:{port}", *quiet],
              port, share=SQLITE_SHARE)  # fmt: skip
        yield started


def run(b: Bench) -> Section:
    count = 100 if b.quick else 1000
    section = Section(
        "MongoDB servers under GetJob's read",
        ["server", "call", "n", "p50 ms", "p99 ms", "server CPU ms per call"],
    )
    with servers(b.work) as started:
        calls: list[tuple[Server, str, Callable[[], object]]] = []
        for s in started:
            calls += [
                (s, "ping", partial(s.client.admin.command, "ping")),
                (s, "find_one by _id", partial(s.jobs.find_one, s.by_id)),
                (s, "find_one by _id and owner (GetJob's)", partial(s.jobs.find_one, s.owned)),
            ]
        times: list[list[float]] = [[] for _ in calls]
        cpu = [0.0] * len(calls)
        for _server, _name, call in calls:
            for _ in range(WARM_UP):
                call()
        # Rounds, each call in turn, so a change of load reaches every row alike.
        for _ in range(ROUNDS):
            for i, (server, _name, call) in enumerate(calls):
                before = server.cpu()
                for _ in range(count // ROUNDS // server.share):
                    started_at = time.perf_counter()
                    call()
                    times[i].append(time.perf_counter() - started_at)
                cpu[i] += server.cpu() - before
    for (server, name, _call), t, used in zip(calls, times, cpu, strict=True):
        section.rows.append(
            [server.name, name, len(t), percentile(t, 50) * 1000, percentile(t, 99) * 1000,
             used / len(t) * 1000]
        )  # fmt: skip
    section.notes.append(
        f"One pymongo client per server in the bench process, {count} sequential calls per"
        f" row in {ROUNDS} rounds taking every row in turn, after {WARM_UP} to warm up; each"
        f" server's own process on loopback with a collection of {OTHER_JOBS + 1} job records"
        " (mp3mesh/core/jobs.py's) and the mesh's indexes. Server CPU is the server's"
        " process (psutil), for FerretDB on PostgreSQL plus the PostgreSQL backends serving"
        " its database. FerretDB is v1 (its v2 needs PostgreSQL's DocumentDB extension),"
        " built by scripts/ferretdb_build.sh. Ping is the wire, the client and the server's"
        " dispatch (FerretDB's asks its backend for its status: on PostgreSQL, a query);"
        " FerretDB on SQLite pushes only a filter on _id alone down to SQLite, any other"
        " filter reads and decodes every record of the collection."
    )
    return section
