from __future__ import annotations

from meshcore.settings import (
    SHIM_PORT,
    AuthClientSettings,
    GatewayClientSettings,
    UploadLimitSettings,
)


class ShimSettings(AuthClientSettings, GatewayClientSettings, UploadLimitSettings):
    shim_listen_host: str = "127.0.0.1"
    shim_port: int = SHIM_PORT
    # Deadline of unary calls; streams (upload, download, watch) run as long as they need.
    call_timeout_seconds: float = 30.0
