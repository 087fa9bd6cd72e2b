"""Unexpected errors answered without internals: INTERNAL, a generic message with the
trace id, and the detail (the exception and its traceback) in the log line of that id.

Without this, grpc.aio answers an exception a handler did not expect with UNKNOWN and
``Unexpected <class '...'>: <message>``: a database's error text names collections,
indexes and values, a Python error names the code's internals. Every server of the mesh
installs :class:`InternalErrorInterceptor` (mp3mesh.core.grpc_server), inside the call's span,
so the id the client is given is the one the log line carries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog
from opentelemetry import trace

from mp3mesh.core.interceptors import AroundInterceptor, Rpc

log = structlog.get_logger()

# What every INTERNAL answer of the mesh starts with; the edges pass such a message on
# and replace any other INTERNAL or UNKNOWN text (mp3mesh/shim/errors.py).
INTERNAL_MESSAGE = "internal error; nothing more can be said here. Quote trace id"


def trace_id() -> str:
    """The current trace's id, as the log lines carry it; a new random id outside one."""
    span = trace.get_current_span().get_span_context()
    return trace.format_trace_id(span.trace_id) if span.is_valid else uuid.uuid4().hex


def internal_message(trace: str) -> str:
    return f"{INTERNAL_MESSAGE} {trace} when reporting it"


class InternalErrorInterceptor(AroundInterceptor):
    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            yield
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise  # a status the handler chose; a client that went away
        except Exception:
            trace = trace_id()
            log.exception("unexpected error", method=rpc.method, trace_id=trace)
            if context.done():  # the call already ended (cancelled, the server stopping)
                raise
            await context.abort(grpc.StatusCode.INTERNAL, internal_message(trace))
