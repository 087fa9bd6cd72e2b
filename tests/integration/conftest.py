"""The integration tier: one real component at a time (PostgreSQL, RabbitMQ, the
MongoDB-wire stand-in, one server, Envoy's config), no whole mesh."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from devstack import ROOT, free_port


@pytest.fixture(scope="session")
def wire_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoClient]:
    """The MongoDB-wire stand-in (nx-27017) on its own, for tests of the store's queries
    that need no other service."""
    var = tmp_path_factory.mktemp("wire-mongo")
    port = free_port()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/nx-27017"), "--data-dir", str(var), "--host", "127.0.0.1",
         "--port", str(port), "--log-file", str(var / "mongo.log"),
         "--pid-file", str(var / "mongo.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client: MongoClient = MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=30000)
    try:
        client.admin.command("ping")
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(15)
