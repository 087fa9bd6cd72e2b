"""Reading credentials from the ``authorization`` metadata, as curl and REST edges send it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable


def _authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            return value.decode() if isinstance(value, bytes) else value
    return None


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    header = _authorization(metadata)
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def basic_credentials(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, str] | None:
    header = _authorization(metadata)
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
