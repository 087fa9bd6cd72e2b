"""A stopped service that does not exit explains itself: its stacks land in its log."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from devstack import ServiceStack, stop_honcho, wait_for

# Says "stopped" on SIGTERM and goes on waiting, as a service whose shutdown hangs would.
STUCK = textwrap.dedent(
    """
    import signal, time

    def waiting_after_stopped():
        while True:
            time.sleep(0.1)

    signal.signal(signal.SIGTERM, lambda *_: print("stopped", flush=True))
    print("ready", flush=True)
    waiting_after_stopped()
    """
)


def test_a_service_that_does_not_exit_is_dumped_then_killed(tmp_path: Path) -> None:
    stack = ServiceStack(env={}, var=tmp_path, commands={})
    log = stack.log_path("stuck")
    log.parent.mkdir(parents=True)
    with log.open("wb") as out:
        stack.processes["stuck"] = subprocess.Popen(
            [sys.executable, "-c", STUCK], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    wait_for(lambda: "ready" in log.read_text(), "the stuck process started", timeout=30)
    with pytest.raises(subprocess.TimeoutExpired):
        stack.stop("stuck", signal.SIGTERM, timeout=1)
    text = log.read_text()
    assert "stopped" in text
    assert "still running 1 s after its stop: py-spy dump" in text
    assert "waiting_after_stopped" in text, text
    assert stack.processes["stuck"].poll() is not None, "killed after the dump"


def test_honcho_past_its_stop_is_dumped_and_killed_with_every_process_under_it(
    tmp_path: Path,
) -> None:
    # A supervisor whose child ignores SIGTERM: neither exits on the stop.
    supervisor = textwrap.dedent(
        f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, lambda *_: None)
        child = subprocess.Popen([sys.executable, "-c", {STUCK!r}])
        print(child.pid, flush=True)
        while True:
            time.sleep(0.1)
        """
    )
    log = tmp_path / "stack.log"
    process = subprocess.Popen([sys.executable, "-c", supervisor], stdout=subprocess.PIPE)
    assert process.stdout is not None
    child = psutil.Process(int(process.stdout.readline()))
    stop_honcho(process, timeout=1, log=log)
    assert process.poll() is not None
    child.wait(10)  # raises if the child outlived its supervisor's kill
    assert "still running 1 s after SIGTERM: py-spy dump" in log.read_text()
