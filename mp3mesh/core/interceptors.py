"""The base of the mesh's gRPC server interceptors: code around each call, inside the call.

grpc.aio hands an interceptor the method handler, not the call: to act within a call
(abort with a status, read metadata, time it, catch what the handler raised) it has to
rebuild the handler for each of the four RPC kinds. :class:`AroundInterceptor` does that
once; a subclass says which calls it applies to and what to do around them, as an async
context manager.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Rpc:
    """What is known of a call before it runs: its method and the kind of its streams."""

    method: str  # "/mp3mesh.files.v1.FileService/Upload"
    client_streaming: bool
    server_streaming: bool

    @property
    def service(self) -> str:
        return self.method.strip("/").rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.method.rpartition("/")[2]

    @property
    def kind(self) -> str:
        """go-grpc-prometheus' grpc_type: unary, client_stream, server_stream, bidi_stream."""
        if self.client_streaming and self.server_streaming:
            return "bidi_stream"
        if self.client_streaming:
            return "client_stream"
        return "server_stream" if self.server_streaming else "unary"


def status_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status the call ended with: set by abort/set_code, else from how it ended."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the client went away
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # some grpc versions keep the number
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "OK" if error is None else grpc.StatusCode.UNKNOWN.name


@asynccontextmanager
async def recording_status(
    context: grpc.aio.ServicerContext, record: Callable[[str], None]
) -> AsyncIterator[None]:
    """Run the call, then ``record`` the name of the status it ended with, however it ended."""
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        record(status_name(context, error))


Around = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]


class AroundInterceptor(grpc.aio.ServerInterceptor):
    def applies_to(self, rpc: Rpc) -> bool:
        return True

    def around(
        self, rpc: Rpc, context: grpc.aio.ServicerContext
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Given to a server alone (serve() chains them): a chain of this one."""
        return await self._alone.intercept_service(continuation, handler_call_details)

    @functools.cached_property
    def _alone(self) -> AroundChain:
        return AroundChain([self])


class AroundChain(grpc.aio.ServerInterceptor):
    """Several AroundInterceptors as one, the first outermost (as grpc.aio would run
    them). grpc.aio asks every interceptor of a server again on each call, and each of
    them rebuilt the method's handler; here a method's handler is wrapped once, on its
    first call, and reused: a call only enters the contexts of the interceptors that
    apply to it (profiled on GetJob: the per-call chain cost about as much as the
    servicer's own code)."""

    def __init__(self, interceptors: Sequence[AroundInterceptor]) -> None:
        self.interceptors = tuple(interceptors)
        # method -> (the handler as found, the handler wrapped)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        rpc = Rpc(method, handler.request_streaming, handler.response_streaming)
        wrapped = handler
        for interceptor in reversed(self.interceptors):
            if interceptor.applies_to(rpc):
                wrapped = wrap_handler(wrapped, functools.partial(interceptor.around, rpc))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def wrap_handler(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """The same handler, each call of it run inside ``around(context)``."""
    codec: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_response(handler.unary_unary, around), **codec
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _unary_response(handler.stream_unary, around), **codec
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _stream_response(handler.unary_stream, around), **codec
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_response(handler.stream_stream, around), **codec
    )


def _unary_response(behavior: Any, around: Around) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(context):
            return await behavior(request, context)

    return call


def _stream_response(behavior: Any, around: Around) -> Any:
    """grpc.aio also takes a streaming behaviour that is a coroutine sending with
    ``context.write()`` (grpc_health's Watch is one): it is awaited, and the wrapper
    yields nothing of its own."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with around(context):
            responses = behavior(request, context)
            if inspect.isawaitable(responses):
                await responses
                return
            async for response in responses:
                yield response

    return call
