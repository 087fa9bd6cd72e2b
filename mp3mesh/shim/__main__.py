"""Run the REST shim: ``python -m mp3mesh.shim``."""

from __future__ import annotations

import uvicorn

from mp3mesh.core import logs, metrics, tracing
from mp3mesh.shim.app import create_app
from mp3mesh.shim.settings import ShimSettings


def main() -> None:
    settings = ShimSettings()
    logs.configure("shim", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("shim", settings)
    uvicorn.run(
        create_app(settings),
        host=settings.shim_listen_host,
        port=settings.shim_port,
        log_config=None,  # keep the logging mp3mesh.core.logs set up
        # The client address is the connection's, never an X-Forwarded-For a client can
        # write (uvicorn would believe one from 127.0.0.1 by default).
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
