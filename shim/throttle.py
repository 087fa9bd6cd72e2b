"""The edge's login limit per client address, answered as Envoy's login_throttle answers
it (envoy/render.py LOGIN_THROTTLED): 429, a google.rpc.Status body, ``retry-after``."""

from __future__ import annotations

import grpc
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from shim.errors import HttpError

LOGIN_THROTTLED = "too many login attempts from your address; try again in a minute"


class LoginLimit:
    def __init__(self, per_minute: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = RateLimitItemPerMinute(per_minute)

    def admit(self, address: str) -> None:
        """Count one login from ``address``; HttpError 429 past the limit."""
        if not self._limiter.hit(self._limit, address):
            raise HttpError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, LOGIN_THROTTLED, headers={"retry-after": "60"}
            )
