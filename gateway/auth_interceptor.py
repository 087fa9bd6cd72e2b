"""Bearer-token check for FileService, made here from memory: the signature against
auth's published keys, the claims, and the revocations pushed to this gateway
(meshcore/verification.py). No call to auth per request, so reads go on while auth is
down, and a logout reaches every replica within a second.

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

from meshcore.credentials import bearer_token
from meshcore.grpc_server import STREAM_ACCEPTED, abort, require_credentials
from meshcore.interceptors import AroundInterceptor, Rpc
from meshcore.tokens import MISSING, InvalidToken
from meshcore.verification import CannotVerify, LocalVerifier


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


class AuthInterceptor(AroundInterceptor):
    def __init__(self, verifier: LocalVerifier, protected_prefix: str) -> None:
        self.verifier = verifier
        self.prefix = protected_prefix

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
        try:
            claims = await self.verifier.verify(token)
        except InvalidToken as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except CannotVerify as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        _caller.set(Caller(user_id=claims.user_id, email=claims.email))
