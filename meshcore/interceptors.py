"""A base for server interceptors that run code around every call, inside the call.

grpc.aio hands an interceptor the method handler, not the call: to act within a call
(abort with a status, read metadata, catch what the handler raised) the interceptor has
to rebuild the handler for each of the four RPC kinds. :func:`wrap_handler` does that
once; a subclass of :class:`AroundInterceptor` only says which methods it applies to and
what to do around them, as an async context manager.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

# Given the call's context and whether the client streams its requests.
Around = Callable[[grpc.aio.ServicerContext, bool], AbstractAsyncContextManager[None]]


class AroundInterceptor(grpc.aio.ServerInterceptor):
    def applies_to(self, method: str) -> bool:
        return True

    def around(
        self, method: str, context: grpc.aio.ServicerContext, client_streaming: bool
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies_to(method):
            return handler
        return wrap_handler(
            handler, lambda context, streaming: self.around(method, context, streaming)
        )


def wrap_handler(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """The same handler, each call of it run inside ``around(context, client_streaming)``."""
    kwargs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_response(handler.unary_unary, around, client_streaming=False), **kwargs
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _unary_response(handler.stream_unary, around, client_streaming=True), **kwargs
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _stream_response(handler.unary_stream, around, client_streaming=False), **kwargs
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_response(handler.stream_stream, around, client_streaming=True), **kwargs
    )


def _unary_response(behavior: Any, around: Around, client_streaming: bool) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(context, client_streaming):
            return await behavior(request, context)

    return call


def _stream_response(behavior: Any, around: Around, client_streaming: bool) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with around(context, client_streaming):
            async for response in behavior(request, context):
                yield response

    return call
