"""The real mesh for the tests: the Procfile under honcho, exactly as `make up` runs it,
on free ports, with its own PostgreSQL database, queues, MongoDB data and mail folder,
all removed afterwards. PostgreSQL and RabbitMQ are the machine's real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from pymongo import MongoClient

from cli.client import is_serving
from tests.helpers import (
    ROOT,
    Stack,
    consumed,
    drop_queues,
    free_port,
    http_ok,
    make_long_audio_video,
    make_video,
    stack_env,
    temp_database,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("stack")
    stack_resources = ExitStack()
    database_url = stack_resources.enter_context(temp_database("mp3mesh_test"))
    env = stack_env(var, database_url)
    auth, gateway = env["AUTH_LISTEN"], env["GATEWAY_LISTEN"]
    env_file = var / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    log = var / "stack.log"
    process = subprocess.Popen(
        ["honcho", "-f", str(ROOT / "Procfile"), "-e", str(env_file), "start"],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"},
    )
    s = Stack(env=env, var=var, log=log, process=process)
    try:
        deadline = time.monotonic() + 120
        while not (
            is_serving(auth)
            and is_serving(gateway)
            and http_ok(f"{s.shim_url}/healthz")
            and http_ok(f"{s.envoy_url}/readyz")
            and consumed(s, env["VIDEO_QUEUE"])
            and consumed(s, env["MP3_QUEUE"])
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stack did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield s
    finally:
        for c in s.clients:
            c.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        drop_queues(
            env["VIDEO_QUEUE"],
            env["MP3_QUEUE"],
            exchanges=[env["JOB_EVENTS_EXCHANGE"], env["REVOCATIONS_EXCHANGE"]],
        )
        stack_resources.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failing test that used the stack, show the end of the stack's log."""
    report = yield
    if report.failed and call.when == "call" and "stack" in getattr(item, "fixturenames", ()):
        s: Stack = item.funcargs["stack"]  # type: ignore[attr-defined]
        report.sections.append(
            ("stack log (tail)", "\n".join(s.log.read_text().splitlines()[-60:]))
        )
    return report


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample inputs, made once with ffmpeg."""
    d = tmp_path_factory.mktemp("media")
    make_video(d / "clip.mp4", 12)
    make_video(d / "silent.mp4", 3, audio=False)
    (d / "notes.txt").write_text("This is a text file, not a video.\n" * 100)
    return d


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 minutes of audio that converts in about 10 s, so a test can hit the conversion
    mid-way without racing it."""
    return make_long_audio_video(tmp_path_factory.mktemp("long") / "long.avi", 2400)


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
