"""The defaults the services and Envoy's renderer share, in one place.

Standard library only, importing nothing of the project: ``envoy/render.py`` loads this
file by its path (mp3mesh/core/defaults.py in the repo, a copy next to render.py in Envoy's
image, where the project is not installed). The settings classes (mp3mesh/core/settings.py
and each service's) take their defaults from here, so each value has one copy.
"""

from __future__ import annotations

# Where each gRPC server listens by default, and so where its clients (the gateway, the
# shim, Envoy) look for it.
AUTH_ADDRESS = "127.0.0.1:50051"
GATEWAY_ADDRESS = "127.0.0.1:50052"
# Where the shim listens, and so where Envoy sends the multipart upload and the page.
SHIM_LISTEN_HOST = "127.0.0.1"
SHIM_PORT = 8080

# The upload limit: a bigger upload is refused (413 at both edges, before a byte is
# stored; RESOURCE_EXHAUSTED at the gateway) and nothing of it is kept.
MAX_UPLOAD_BYTES = 2 * 1024**3

# Login calls one client address may make per minute (auth counts them on the method,
# whatever edge or path they came through) before RESOURCE_EXHAUSTED / 429.
LOGIN_REQUESTS_PER_MINUTE = 30

# The tokens auth issues: who signs them and for whom (Envoy's jwt_authn checks both).
JWT_ISSUER = "mp3mesh-auth"
JWT_AUDIENCE = "mp3mesh"
