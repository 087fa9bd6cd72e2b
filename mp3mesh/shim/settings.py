from __future__ import annotations

from mp3mesh.core import defaults
from mp3mesh.core.settings import (
    AuthVerifierSettings,
    GatewayClientSettings,
    UploadLimitSettings,
)


class ShimSettings(AuthVerifierSettings, GatewayClientSettings, UploadLimitSettings):
    # Where the shim listens; Envoy sends multipart uploads and the web page
    # there (SHIM_ADDRESS, which defaults to these).
    shim_listen_host: str = defaults.SHIM_LISTEN_HOST
    shim_port: int = defaults.SHIM_PORT
    # Deadline of unary calls; streams (upload, download, watch) run as long as they need.
    call_timeout_seconds: float = 30.0
