"""The MongoDB-wire stand-in the local stack and the tests run (nx-27017): where it answers
differently from MongoDB, and the one adaptation the mesh makes for each, in one place.
Each adaptation is also correct on a real MongoDB, so no code path asks which one it
talks to; the rest of the code names this module instead of the stand-in's quirks.

- It matches ObjectIds only in ``_id``. An id the mesh queries by anywhere else is kept
  as text (:func:`id_as_text`): the MP3's key on a job record (mp3mesh/core/jobs.py
  ``mp3_key``), a converter's claim token (mp3mesh/converter/claim.py, text from the start).
- ``find_one_and_update`` returns the datetimes it set as ISO strings:
  :func:`stored_datetime` reads either (mp3mesh/core/timestamps.py).
- It returns each document ``$push`` appended to an array as that document's extended
  JSON text (``{"at": {"$date": ...}}``): :func:`pushed_documents` reads either (the
  attempts on a job record, mp3mesh/core/jobs.py).
- ``find_one_and_update`` and ``find_one_and_delete`` with ``$or`` in the filter ignore
  the filter's other conditions (any document matching the ``$or`` is taken): such a
  filter is written without ``$or`` (mp3mesh/gateway/resumable.py: a write holds an upload until
  ``writer_until``, 0 once released, so "free" is one condition). GridFS chunk
  collections take inserts and removal of a whole file's chunks only: a chunk is never
  replaced, nor some of a file's chunks removed (mp3mesh/gateway/resumable.py stores parts).
- It ignores cursor batch limits and fails past 48 MB in one reply: GridFS is read in
  windows of a few chunks per query (mp3mesh/core/gridfs_io.py, which does so to bound
  memory anyway).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId, json_util


def id_as_text(value: ObjectId | str) -> str:
    """An id as the text a query outside ``_id`` matches on."""
    return str(value)


def stored_datetime(value: Any) -> Any:
    """A stored time as a datetime when it came back as an ISO string; else as it is."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def pushed_documents(values: list[Any] | None) -> list[dict[str, Any]]:
    """The documents of an array ``$push`` built, when they came back as extended JSON
    text (dates included); else as they are."""
    return [json_util.loads(v) if isinstance(v, str) else v for v in values or []]
