"""Ports for the processes a stack starts, reserved without a race.

The usual ``free_port()`` (bind to port 0, read the number, close) leaves a gap between
closing the probe socket and the server binding the port; in that gap the kernel may
give the port to anyone: another process's ``bind(0)``, or the local end of any outgoing
connection (both draw from the same ephemeral range). Here the probe socket is not
closed: it stays bound, with SO_REUSEADDR and never listening, for as long as this
process runs. While it is bound the kernel hands the port to no ``bind(0)`` and no
outgoing connection, and a plain ``bind`` to it fails; a server that sets SO_REUSEADDR
(grpc, uvicorn, asyncio servers such as aiosmtpd, Python's HTTP servers such as the
Prometheus one, Envoy, nx-27017: every server the mesh runs) binds and listens on it all
the same, because Linux lets a listening SO_REUSEADDR socket share its port with bound
SO_REUSEADDR sockets that do not listen. A connection to a reserved port nobody serves
is refused, as to a free one.
"""

from __future__ import annotations

import socket
import threading

_held: list[socket.socket] = []
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that stays reserved for this process's servers until it exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    with _lock:
        _held.append(sock)
    port: int = sock.getsockname()[1]
    return port
