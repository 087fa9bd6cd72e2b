"""Stored times as protobuf Timestamps, for every service that answers with one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from mp3mesh.core.nx27017 import stored_datetime


def timestamp(value: Any) -> Timestamp:
    """A stored time as a protobuf Timestamp (unset for no time). PostgreSQL gives aware
    datetimes, MongoDB naive UTC ones (see mp3mesh/core/nx27017.py for the stand-in's)."""
    ts = Timestamp()
    value = stored_datetime(value)
    if isinstance(value, dt.datetime):
        ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return ts
