"""OpenTelemetry traces: one trace per job, from the upload to the mail.

The trace context (W3C ``traceparent``) travels in gRPC metadata and in AMQP message
headers; where a job waits in a store (the gateway's outbox, until the relay publishes
its announcement) the context waits with it, as a carrier dict on the job record. So the
upload, the token check, the conversion and the mail of one job are spans of one trace.
Log lines carry ``trace_id`` and ``span_id`` (mp3mesh/core/logs.py).

Spans are always made, so ids travel and are logged; where they go is ``TRACES_EXPORTER``:
``otlp`` (OTLP/HTTP to ``OTLP_ENDPOINT``), ``console`` (one JSON object a line on stdout)
or ``none``. Health checks and reflection are not traced: they belong to no job.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from mp3mesh.core.interceptors import AroundInterceptor, Rpc, recording_status
from mp3mesh.core.settings import RuntimeSettings

tracer = trace.get_tracer("mp3mesh")
# Calls that belong to no job.
UNTRACED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def configure(service: str, settings: RuntimeSettings) -> None:
    """Install this process's tracer provider, exporting as ``TRACES_EXPORTER`` says."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.traces_exporter == "otlp":
        endpoint = f"{settings.otlp_endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif settings.traces_exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stdout, formatter=_one_line)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _one_line(span: ReadableSpan) -> str:
    return json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"


def carrier() -> dict[str, str]:
    """The current trace context as headers (``traceparent``...): to send or to keep."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The context a carrier holds (a new root when it holds none)."""
    return propagate.extract({k: str(v) for k, v in (headers or {}).items()})


@contextmanager
def attached(ctx: otel_context.Context) -> Iterator[None]:
    """Make ``ctx`` current in this thread for the with-block."""
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def set_job(job_id: str) -> None:
    """Tag the current span with the job it works on, to find a job's trace by its id."""
    trace.get_current_span().set_attribute("mp3mesh.job_id", job_id)


class ServerTracing(AroundInterceptor):
    """A SERVER span around each call, child of the caller's (``traceparent`` metadata)."""

    def applies_to(self, rpc: Rpc) -> bool:
        return not rpc.method.startswith(UNTRACED_PREFIXES)

    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        with tracer.start_as_current_span(
            f"{rpc.service}/{rpc.name}",
            context=extract(dict(context.invocation_metadata() or ())),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": rpc.service, "rpc.method": rpc.name},
        ) as span:
            async with recording_status(context, lambda code: _set_status(span, code)):
                yield


def _set_status(span: Span, code: str) -> None:
    span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, code))


def messaging_span(
    operation: str, queue: str, kind: SpanKind, parent: otel_context.Context | None = None
) -> Any:
    """A PRODUCER or CONSUMER span for ``queue`` (a context manager that makes it current)."""
    return tracer.start_as_current_span(
        f"{operation} {queue}",
        context=parent,
        kind=kind,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": operation,
            "messaging.destination.name": queue,
        },
    )
