from __future__ import annotations

from meshcore import defaults
from meshcore.settings import (
    AuthClientSettings,
    GatewayClientSettings,
    UploadLimitSettings,
)


class ShimSettings(AuthClientSettings, GatewayClientSettings, UploadLimitSettings):
    shim_listen_host: str = defaults.SHIM_LISTEN_HOST
    shim_port: int = defaults.SHIM_PORT
    # Deadline of unary calls; streams (upload, download, watch) run as long as they need.
    call_timeout_seconds: float = 30.0
