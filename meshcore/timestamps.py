"""Stored times as protobuf Timestamps, for every service that answers with one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: Any) -> Timestamp:
    """A stored time as a protobuf Timestamp (unset for no time). PostgreSQL gives aware
    datetimes, MongoDB naive UTC ones, and the nx-27017 stand-in ISO strings for
    datetimes set by find_one_and_update."""
    ts = Timestamp()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return ts
