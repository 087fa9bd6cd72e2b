"""Sizes and limits the parts of the mesh must agree on, in one place.

Standard library only: every service, the shim, the client and the tests import it. The
environment can change the upload limit (``MAX_UPLOAD_BYTES``, read by
:class:`meshcore.settings.UploadLimitSettings`; its default lives in meshcore/defaults.py,
which Envoy's renderer reads too); the rest are fixed by the code.
"""

from __future__ import annotations

from meshcore.defaults import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES  # re-exported

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# The largest gRPC message a server, the shim's channels and the client accept, either
# way. Upload chunks are far smaller; this leaves room for a client that picks 1-4 MiB.
GRPC_MAX_MESSAGE_BYTES = 8 * MIB

# Bytes per upload message, as the client and the shim cut a video: one GridFS chunk's
# worth, well under gRPC's 4 MiB default message limit.
UPLOAD_MESSAGE_BYTES = 256 * KIB

# JSON request bodies are small (credentials); a bigger one is refused, not read.
MAX_JSON_BODY_BYTES = 1 * MIB
