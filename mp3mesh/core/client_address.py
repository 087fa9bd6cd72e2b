"""The client address a request came from, as the edge established it.

An edge (Envoy, the shim) works out who its client is: Envoy from the connection, or from
``x-forwarded-for`` past exactly ``ENVOY_TRUSTED_PROXY_HOPS`` proxies of the deployment's
own; the shim from the connection. It passes the answer on in :data:`CLIENT_ADDRESS_KEY`,
overwriting whatever a client sent under that name, and auth keys its per-address limits
on it. ``x-forwarded-for`` itself is never read behind the edge: its left part is
whatever the client wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

CLIENT_ADDRESS_KEY = "x-mp3mesh-client-address"


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: ``ipv4:127.0.0.1:5555`` -> ``127.0.0.1``,
    ``ipv6:[::1]:5555`` -> ``::1``."""
    host = peer.split(":", 1)[-1].rsplit(":", 1)[0]
    return host.strip("[]") or peer


def edge_address(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The address an edge put in the call's metadata, if it is an IP address."""
    for key, value in metadata or ():
        if key.lower() == CLIENT_ADDRESS_KEY:
            text = (value.decode() if isinstance(value, bytes) else value).strip()
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                return None
    return None
