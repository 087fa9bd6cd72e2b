"""What a process that does not exit was doing: its threads' stacks, by py-spy (dev extras).

A service that logs "stopped" and then never exits tells nothing by itself; the stacks
of each of its Python threads, taken before it is killed, name the wait it is stuck in.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid``, then every process under it; none if it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stacks(pid: int, timeout: float = 20) -> str:
    """``py-spy dump`` (Python and native frames) of ``pid`` and each of its Python
    descendants (a supervisor's services), or why there is none."""
    processes = process_tree(pid)
    if not processes:
        return f"process {pid} is gone: no stacks"
    if PY_SPY is None:
        return "py-spy is not installed (pip install -e '.[dev]'): no stacks"
    dumps = []
    for process in processes:
        try:
            if "python" not in Path(process.exe()).name:
                continue
        except psutil.Error:
            continue
        try:
            done = subprocess.run(
                [PY_SPY, "dump", "--native", "--pid", str(process.pid)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            dumps.append(done.stdout + done.stderr)
        except subprocess.TimeoutExpired:
            dumps.append(f"py-spy dump --pid {process.pid}: no answer within {timeout:g} s\n")
    return "".join(dumps) or f"no Python process under {pid}"


def record_stacks(pid: int, log: Path | None, why: str) -> None:
    """The stacks of ``pid`` (see :func:`stacks`) under a line saying ``why``: printed (the
    test's output) and, with ``log``, appended to that log."""
    text = f"--- {why}: py-spy dump ---\n{stacks(pid)}--- end of dump ---\n"
    print(text, flush=True)
    if log is not None:
        with log.open("a") as out:
            out.write(text)


def kill_tree(pid: int) -> None:
    """SIGKILL to every process under ``pid``, then to ``pid``."""
    for process in reversed(process_tree(pid)):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
