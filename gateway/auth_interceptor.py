"""Bearer-token check for FileService, by asking AuthService.ValidateToken with a deadline.

The check runs inside each FileService call (an AroundInterceptor), where
it can abort with a proper status and leave the caller in a context variable for the
servicer. Health and reflection stay open.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import structlog

from meshcore.credentials import bearer_token
from meshcore.grpc_server import STREAM_ACCEPTED, abort, require_credentials
from meshcore.interceptors import AroundInterceptor
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

log = structlog.get_logger()


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


class AuthInterceptor(AroundInterceptor):
    def __init__(
        self, auth: auth_pb2_grpc.AuthServiceStub, timeout: float, protected_prefix: str
    ) -> None:
        self.auth = auth
        self.timeout = timeout
        self.prefix = protected_prefix

    def applies_to(self, method: str) -> bool:
        return method.startswith(self.prefix)

    @asynccontextmanager
    async def around(
        self, method: str, context: grpc.aio.ServicerContext, client_streaming: bool
    ) -> AsyncIterator[None]:
        """Authenticate first; a client-streaming call that passes is told so
        (STREAM_ACCEPTED) before the handler reads a byte."""
        await self._authenticate(context)
        if client_streaming:
            await context.send_initial_metadata((STREAM_ACCEPTED,))
        yield

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        token = await require_credentials(
            bearer_token(context.invocation_metadata()),
            context,
            "missing bearer token: log in and send 'authorization: Bearer <token>'",
        )
        try:
            reply = await self.auth.ValidateToken(
                auth_pb2.ValidateTokenRequest(token=token), timeout=self.timeout
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
        _caller.set(Caller(user_id=reply.user_id, email=reply.email))
