"""A consumer's liveness signal, and the probe that reads it.

A RabbitMQ consumer has no port a kubelet could probe. Its consume loop calls
:meth:`Heartbeat.beat` while it is connected to the broker (every second while idle,
every half second while a handler runs), which touches a file; a consumer that lost its
broker connection, or whose loop is stuck, stops touching it. The probe is a separate,
standard-library-only process so that it costs little each time it runs:

    python -m mp3mesh.core.heartbeat /tmp/heartbeat --max-age 60

exits 0 when the file was touched within the last 60 seconds, 1 otherwise. The file is
``HEARTBEAT_FILE`` (:class:`mp3mesh.core.settings.BrokerSettings`); unset, nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


class Heartbeat:
    """Touches ``path`` on each :meth:`beat`, at most once per ``interval`` seconds."""

    def __init__(self, path: str | None, interval: float = 0.5) -> None:
        self.path = Path(path) if path else None
        self.interval = interval
        self._last = float("-inf")

    def beat(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self.path.touch()  # creates it the first time, then only updates the mtime


def age_seconds(path: Path) -> float:
    """Seconds since ``path`` was last touched (infinite if it does not exist)."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Is the consumer alive and connected?")
    parser.add_argument("path", type=Path, help="the HEARTBEAT_FILE the consumer touches")
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    age = age_seconds(args.path)
    if age <= args.max_age:
        return 0
    print(f"no heartbeat in {args.path} for {age:.0f} s (max {args.max_age:g} s)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
