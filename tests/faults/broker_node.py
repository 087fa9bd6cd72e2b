"""A RabbitMQ node of the test's own, for faults that act on the whole broker.

The machine's RabbitMQ (5672) is shared with other test runs, so nothing may raise an
alarm on it or close its connections. This starts a second node of the same installed
server: its own node name, ports, data and log directories, no plugins, and its own
Erlang cookie (HOME is a directory of the node's, so ``rabbitmqctl`` run with the same
environment talks to this node and to no other). It runs as a child of the test
process, in its own process group, and is stopped with ``rabbitmqctl stop``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The server's own scripts: /usr/sbin's wrappers switch to the rabbitmq user and its
# cookie, which would reach the machine's node.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 120


@dataclass
class BrokerNode:
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The services' AMQP_URL for this node, with the settings' query (heartbeats,
        and how long a publisher may stay blocked by an alarm before its connection is
        dropped)."""
        return (
            f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
            "?heartbeat=30&blocked_connection_timeout=60"
        )

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <this node> args...``; its output."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    @contextmanager
    def memory_alarm(self) -> Iterator[None]:
        """The memory alarm on for the with-block: the broker blocks every connection
        that publishes, as it does when it runs short of memory."""
        self.ctl("set_vm_memory_high_watermark", "0")
        try:
            yield
        finally:
            self.ctl("set_vm_memory_high_watermark", "0.4")

    def close_all_connections(self) -> str:
        return self.ctl("close_all_connections", "closed by the fault test")


def unreserved_port() -> int:
    """A port free now, and let go: devstack's free_port keeps its ports bound (reserved)
    for servers that set SO_REUSEADDR, which the Erlang distribution listener may not."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def broker_node(var: Path) -> Iterator[BrokerNode]:
    """Start a node under ``var``, wait until it takes connections, stop it after."""
    var.mkdir(parents=True, exist_ok=True)
    plugins = var / "enabled_plugins"
    plugins.write_text("[].\n")
    name = f"mp3mesh-faults-{uuid.uuid4().hex[:8]}@localhost"
    port = unreserved_port()
    env = {
        **os.environ,
        "HOME": str(var),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(unreserved_port()),
        "RABBITMQ_MNESIA_BASE": str(var / "mnesia"),
        "RABBITMQ_LOG_BASE": str(var / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(var / "rabbitmq"),  # none: the defaults
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(var / "advanced.config"),
    }
    with (var / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    node = BrokerNode(name, port, env, process)
    try:
        _await_startup(node, var)
        yield node
    finally:
        try:
            node.ctl("stop", timeout=60)
            process.wait(60)
        except (RuntimeError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _await_startup(node: BrokerNode, var: Path) -> None:
    """Until the node runs (``await_startup`` fails at once while the node is not yet
    reachable at all)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            node.ctl("await_startup", "--timeout", "30", timeout=40)
            return
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            if node.process.poll() is not None or time.monotonic() > deadline:
                tail = (var / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the broker node did not start: {exc}\n{tail}") from exc
            time.sleep(0.5)
