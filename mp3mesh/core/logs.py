"""Structured logging: one JSON object per line on stderr, via structlog.

Secrets are dropped before rendering, so a careless ``log.info(..., password=...)`` cannot
leak one. A line logged inside a span (mp3mesh/core/tracing.py) carries its ``trace_id`` and
``span_id``, so one job's lines can be found in every service's log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

_SECRET_KEYS = frozenset({"password", "token", "authorization", "secret"})


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _SECRET_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event["trace_id"] = trace.format_trace_id(span.trace_id)
        event["span_id"] = trace.format_span_id(span.span_id)
    return event


def configure(service: str, level: str = "INFO", fmt: str = "json") -> structlog.stdlib.BoundLogger:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(name)s %(message)s")
    for chatty in ("pika", "yoyo"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            # A processor, not a context variable: worker threads log with it too.
            lambda _, __, event: {"service": service, **event},
            structlog.processors.add_log_level,
            _add_trace_ids,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger()
