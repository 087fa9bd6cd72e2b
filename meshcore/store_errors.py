"""Store outages as UNAVAILABLE (HTTP 503), with a message that names no host.

Without this, a MongoDB or PostgreSQL outage reaches the client as UNKNOWN (HTTP 500)
with the driver's text, which names hosts and ports. Every server of the mesh installs
:class:`StoreOutageInterceptor`: the driver errors that mean "the store is down, slow or
unreachable" become UNAVAILABLE, which clients retry; the details go to the log only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import psycopg2
import psycopg2.pool
import pymongo.errors
import structlog

log = structlog.get_logger()

# MongoDB: no server reachable in time, a dropped connection, an operation past timeoutMS.
# PostgreSQL: connection refused/lost/timed out, statement timeout, an exhausted pool.
STORE_OUTAGES: tuple[type[BaseException], ...] = (
    pymongo.errors.ConnectionFailure,  # AutoReconnect, NetworkTimeout, ServerSelectionTimeout
    pymongo.errors.ExecutionTimeout,
    pymongo.errors.WTimeoutError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.pool.PoolError,
)
MESSAGE = "a data store is unavailable right now; nothing was changed, please try again shortly"


def is_store_outage(exc: BaseException) -> bool:
    return isinstance(exc, STORE_OUTAGES) or (
        isinstance(exc, pymongo.errors.PyMongoError) and exc.timeout
    )


class StoreOutageInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary or handler.stream_unary:
            behavior = handler.unary_unary or handler.stream_unary
            wrapped = _wrap_unary(behavior, method)
            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
        else:
            behavior = handler.unary_stream or handler.stream_stream
            wrapped = _wrap_stream(behavior, method)
            factory = (
                grpc.unary_stream_rpc_method_handler
                if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler
            )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap_unary(behavior: Any, method: str) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            log.warning("store unavailable", method=method, error=repr(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)

    return call


def _wrap_stream(behavior: Any, method: str) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            log.warning("store unavailable", method=method, error=repr(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)

    return call
