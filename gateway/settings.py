from __future__ import annotations

from meshcore.settings import MeshSettings


class GatewaySettings(MeshSettings):
    gateway_listen: str = "127.0.0.1:50052"
    auth_address: str = "127.0.0.1:50051"
    auth_timeout_seconds: float = 2.0
    # Larger uploads are refused with RESOURCE_EXHAUSTED and nothing is kept.
    max_upload_bytes: int = 2 * 1024**3
    publish_timeout_seconds: float = 10.0
    watch_poll_seconds: float = 0.5
