"""Bearer-token check for FileService, by asking AuthService.ValidateToken with a deadline.

The interceptor wraps each FileService handler so the check runs inside the call, where
it can abort with a proper status and leave the caller in a context variable for the
servicer. Health and reflection stay open.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from meshcore.credentials import bearer_token
from meshcore.grpc_server import STREAM_ACCEPTED, abort, require_credentials
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

log = structlog.get_logger()


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, auth: auth_pb2_grpc.AuthServiceStub, timeout: float, protected_prefix: str
    ) -> None:
        self.auth = auth
        self.timeout = timeout
        self.prefix = protected_prefix

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self.prefix):
            return handler
        return _guarded(handler, self._authenticate)

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


def _guarded(
    handler: grpc.RpcMethodHandler,
    authenticate: Callable[[grpc.aio.ServicerContext], Awaitable[None]],
) -> grpc.RpcMethodHandler:
    """The same handler, with ``authenticate`` run first inside the call. Client-streaming
    calls that pass it are told so (STREAM_ACCEPTED) before the handler reads a byte."""
    kwargs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await authenticate(context)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await authenticate(context)
            async for response in inner_us(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await authenticate(context)
            await context.send_initial_metadata((STREAM_ACCEPTED,))
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    inner_ss = handler.stream_stream

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await authenticate(context)
        await context.send_initial_metadata((STREAM_ACCEPTED,))
        async for response in inner_ss(requests, context):
            yield response

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
