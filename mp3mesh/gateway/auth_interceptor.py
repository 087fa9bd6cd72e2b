"""Bearer-token check for FileService, made here from memory: the signature against
auth's published keys, the claims, and the revocations pushed to this gateway
(mp3mesh/core/verification.py). No call to auth per request, so reads go on while auth is
down, and a logout reaches every replica within a second.

A stream (Upload, Download, WatchJob) is checked when it starts and then every
``recheck`` seconds while it runs: once its token is revoked or expires, the call is
cancelled (an upload's writes are removed, as for any cancelled upload) and ends with
UNAUTHENTICATED saying why.

The check runs inside each FileService call (an AroundInterceptor), where
it can abort with a proper status and leave the caller in a context variable for the
servicer. Health and reflection stay open.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import structlog

from mp3mesh.core.credentials import bearer_token
from mp3mesh.core.grpc_server import STREAM_ACCEPTED, abort, require_credentials
from mp3mesh.core.interceptors import AroundInterceptor, Rpc
from mp3mesh.core.tokens import MISSING, Claims, InvalidToken
from mp3mesh.core.verification import CannotVerify, LocalVerifier

log = structlog.get_logger()


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


# How often a running stream's token is checked again.
RECHECK_SECONDS = 1.0


class AuthInterceptor(AroundInterceptor):
    def __init__(
        self, verifier: LocalVerifier, protected_prefix: str, recheck: float = RECHECK_SECONDS
    ) -> None:
        self.verifier = verifier
        self.prefix = protected_prefix
        self.recheck = recheck

    def applies_to(self, rpc: Rpc) -> bool:
        return rpc.method.startswith(self.prefix)

    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Authenticate first; a client-streaming call that passes is told so
        (STREAM_ACCEPTED) before the handler reads a byte."""
        claims = await self._authenticate(context)
        if rpc.client_streaming:
            await context.send_initial_metadata((STREAM_ACCEPTED,))
        if rpc.client_streaming or rpc.server_streaming:
            async with self._while_valid(claims, context):
                yield
        else:
            yield

    @asynccontextmanager
    async def _while_valid(
        self, claims: Claims, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        """Run the call, cancelled as soon as its token is refused (checked every
        ``recheck`` seconds), then answered UNAUTHENTICATED with the reason."""
        call = asyncio.current_task()
        assert call is not None
        refused: list[str] = []

        async def watch() -> None:
            # Polled: a dictionary lookup a second per stream costs less than a listener
            # per stream on the revocation feed, and catches expiry the same way.
            while (reason := self.verifier.refusal(claims)) is None:  # noqa: ASYNC110
                await asyncio.sleep(self.recheck)
            refused.append(reason)
            call.cancel()

        watcher = asyncio.create_task(watch())
        try:
            yield
        except asyncio.CancelledError:
            if not refused:
                raise  # the client went away, or the server is stopping
            call.uncancel()
            log.info("stream ended: its token was refused", reason=refused[0])
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, refused[0])
        finally:
            watcher.cancel()

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Claims:
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
        return claims
