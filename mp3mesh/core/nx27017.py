"""The MongoDB-wire stand-in the local stack and the tests run (nx-27017): where it answers
differently from MongoDB, and the one adaptation the mesh makes for each, in one place.
Each adaptation is also correct on a real MongoDB, so no code path asks which one it
talks to; the rest of the code names this module instead of the stand-in's quirks.

- It matches ObjectIds only in ``_id``. An id the mesh queries by anywhere else is kept
  as text (:func:`id_as_text`): the MP3's key on a job record (mp3mesh/core/jobs.py
  ``mp3_key``), a converter's claim token (mp3mesh/converter/claim.py, text from the start).
- ``find_one_and_update`` returns the datetimes it set as ISO strings:
  :func:`stored_datetime` reads either (mp3mesh/core/timestamps.py).
- It ignores cursor batch limits and fails past 48 MB in one reply: GridFS is read in
  windows of a few chunks per query (mp3mesh/core/gridfs_io.py, which does so to bound
  memory anyway).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId


def id_as_text(value: ObjectId | str) -> str:
    """An id as the text a query outside ``_id`` matches on."""
    return str(value)


def stored_datetime(value: Any) -> Any:
    """A stored time as a datetime when it came back as an ISO string; else as it is."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value
