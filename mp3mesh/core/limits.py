"""Sizes and limits the parts of the mesh must agree on, in one place.

Standard library only: every service, the shim, the client and the tests import it. The
environment can change the upload limit (``MAX_UPLOAD_BYTES``, read by
:class:`mp3mesh.core.settings.UploadLimitSettings`; its default lives in mp3mesh/core/defaults.py,
which Envoy's renderer reads too); the rest are fixed by the code.
"""

from __future__ import annotations

from mp3mesh.core.defaults import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES  # re-exported

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

# Every string a client sends is bounded; longer is INVALID_ARGUMENT naming the field
# (the proto comments say the same). An email address: RFC 5321's 254.
MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 1024
MAX_DISPLAY_NAME_LENGTH = 200
MAX_FILENAME_LENGTH = 255
# type "/" subtype, 127 each (RFC 6838), with a few parameters.
MAX_CONTENT_TYPE_LENGTH = 255
SHA256_HEX_LENGTH = 64
# Object ids are 24 hexadecimal characters; a longer value is not echoed back.
MAX_ID_LENGTH = 64
# A bearer token (a JWT of ours is about 400 characters).
MAX_TOKEN_LENGTH = 4096


def too_long(field: str, value: str, limit: int) -> str | None:
    """The INVALID_ARGUMENT message when ``value`` is over ``limit`` characters, else None."""
    return f"{field} is longer than {limit} characters" if len(value) > limit else None
