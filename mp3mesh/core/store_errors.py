"""Store outages as UNAVAILABLE (HTTP 503), with a message that names no host.

Without this, a MongoDB or PostgreSQL outage reaches the client as UNKNOWN (HTTP 500)
with the driver's text, which names hosts and ports. Every server of the mesh installs
:class:`StoreOutageInterceptor`: the driver errors that mean "the store is down, slow or
unreachable" become UNAVAILABLE, which clients retry; the details go to the log only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import psycopg2
import psycopg2.pool
import pymongo.errors
import structlog

from mp3mesh.core.interceptors import AroundInterceptor, Rpc

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


class StoreOutageInterceptor(AroundInterceptor):
    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            log.warning("store unavailable", method=rpc.method, error=repr(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)
