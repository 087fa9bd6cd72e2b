"""How one part of the mesh calls another: every such channel is made here, alike.

Round robin, not gRPC's default pick_first: the Kubernetes Services of the gRPC servers
are headless, so a name resolves to every ready pod, and pick_first would send all of a
caller's calls to the first address for as long as that connection lives. The servers
close connections after ``MAX_CONNECTION_AGE_MS`` (mp3mesh.core.grpc_server), so callers
re-resolve and new pods get their share.
"""

from __future__ import annotations

import grpc

from mp3mesh.core.grpc_server import MESSAGE_SIZE_OPTIONS

# A service that restarted (auth after a key rotation) is connected to again within a
# second, not after gRPC's default backoff, which grows to two minutes while it is down.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
CHANNEL_OPTIONS = [
    *MESSAGE_SIZE_OPTIONS,
    ("grpc.lb_policy_name", "round_robin"),
    *RECONNECT_OPTIONS,
]


def service_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str | None = None,
) -> grpc.aio.Channel:
    """A channel to another service at ``address`` (``host:port``, any gRPC target):
    over TLS with ``credentials`` (mp3mesh.core.tls.channel_credentials), else plaintext.
    Over TLS the server's certificate must name ``server_name`` (a DNS SAN), which is
    also sent as SNI; unset, the host of ``address``, as gRPC checks by default."""
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    options = list(CHANNEL_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)
