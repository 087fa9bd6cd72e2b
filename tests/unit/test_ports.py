"""devstack's reserved ports: nobody else gets one, the stack's own server binds it."""

from __future__ import annotations

import socket

import pytest

from devstack import free_port


def test_a_reserved_port_is_refused_to_a_plain_bind_and_never_handed_out() -> None:
    port = free_port()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    handed_out = set()
    for _ in range(500):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 0))
            handed_out.add(probe.getsockname()[1])
    assert port not in handed_out


def test_a_server_with_so_reuseaddr_listens_on_a_reserved_port() -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            accepted, _ = server.accept()
            accepted.close()
