"""Bearer-token check for FileService, by asking AuthService.ValidateToken with a deadline.

The check runs inside each FileService call (an AroundInterceptor), where
it can abort with a proper status and leave the caller in a context variable for the
servicer. Health and reflection stay open.

Positive answers are cached for ``cache_seconds`` (never past the token's expiry), so
most calls skip the round trip to auth; a token revoked or an account deleted is
refused once its entry has aged out. Refusals are never cached.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import structlog
from cachetools import TLRUCache

from meshcore import tracing
from meshcore.credentials import bearer_token
from meshcore.grpc_server import STREAM_ACCEPTED, abort, require_credentials
from meshcore.interceptors import AroundInterceptor, Rpc
from meshcore.tokens import MISSING
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

log = structlog.get_logger()

VALIDATION_METHOD = "/mp3mesh.auth.v1.AuthService/ValidateToken"


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


@dataclass(frozen=True)
class _Validated:
    caller: Caller
    expires: float  # time.monotonic() when the token expires


class TokenCache:
    """Who a token belongs to, for at most ``seconds`` and never past its expiry; at most
    ``size`` tokens (least recently used go first). ``seconds`` 0: nothing is kept."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds = seconds
        self._entries: TLRUCache[bytes, _Validated] = TLRUCache(
            maxsize=size, ttu=self._until, timer=time.monotonic
        )

    def _until(self, _key: bytes, value: _Validated, now: float) -> float:
        return min(now + self.seconds, value.expires)

    def get(self, token: str) -> Caller | None:
        entry = self._entries.get(_digest(token))
        return entry.caller if entry is not None else None

    def put(self, token: str, caller: Caller, expires_unix: float) -> None:
        if self.seconds <= 0:
            return
        expires = time.monotonic() + (expires_unix - time.time())
        self._entries[_digest(token)] = _Validated(caller, expires)


def _digest(token: str) -> bytes:
    """The cache's key: tokens themselves are not kept in memory longer than a call."""
    return hashlib.sha256(token.encode()).digest()


class AuthInterceptor(AroundInterceptor):
    def __init__(
        self,
        auth: auth_pb2_grpc.AuthServiceStub,
        timeout: float,
        protected_prefix: str,
        cache: TokenCache,
    ) -> None:
        self.auth = auth
        self.timeout = timeout
        self.prefix = protected_prefix
        self.cache = cache

    def applies_to(self, rpc: Rpc) -> bool:
        return rpc.method.startswith(self.prefix)

    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Authenticate first; a client-streaming call that passes is told so
        (STREAM_ACCEPTED) before the handler reads a byte."""
        await self._authenticate(context)
        if rpc.client_streaming:
            await context.send_initial_metadata((STREAM_ACCEPTED,))
        yield

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        token = await require_credentials(
            bearer_token(context.invocation_metadata()),
            context,
            MISSING,
        )
        if (cached := self.cache.get(token)) is not None:
            _caller.set(cached)
            return
        try:
            with tracing.client_call(VALIDATION_METHOD) as metadata:
                reply = await self.auth.ValidateToken(
                    auth_pb2.ValidateTokenRequest(token=token),
                    timeout=self.timeout,
                    metadata=metadata,
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                await abort(
                    context, grpc.StatusCode.UNAUTHENTICATED, exc.details() or "invalid token"
                )
            log.warning("auth service call failed", code=exc.code().name, details=exc.details())
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "cannot check your token right now: auth service unavailable",
            )
        caller = Caller(user_id=reply.user_id, email=reply.email)
        self.cache.put(token, caller, reply.expire_time.seconds)
        _caller.set(caller)
