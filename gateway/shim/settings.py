from __future__ import annotations

from meshcore.settings import MeshSettings


class ShimSettings(MeshSettings):
    shim_listen_host: str = "127.0.0.1"
    shim_port: int = 8080
    auth_address: str = "127.0.0.1:50051"
    gateway_address: str = "127.0.0.1:50052"
    # The gateway's limit too (same variable): a bigger upload is refused with 413 here,
    # before a byte reaches the gateway.
    max_upload_bytes: int = 2 * 1024**3
    # Deadline of unary calls; streams (upload, download, watch) run as long as they need.
    call_timeout_seconds: float = 30.0
