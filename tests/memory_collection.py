"""An in-memory stand-in for the few pymongo collection methods the job's transitions
are applied with, so that the state machine's tests (tests/test_job_transitions.py) run
without any server; the same tests run against the MongoDB-wire server too, which keeps
this fake honest about the operators it knows.

Only what mp3mesh/core/jobs.py writes is understood: equality (``None`` also matching a
missing field, as in MongoDB), ``$in``, ``$lt``, ``$exists``; ``$set``, ``$unset``,
``$inc``, ``$push``. Anything else raises, so a transition that starts using more fails here first.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from pymongo import ReturnDocument

MISSING = object()


def _matches_value(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        for op, arg in condition.items():
            if op == "$in":
                ok = value is not MISSING and value in arg
            elif op == "$lt":
                ok = value is not MISSING and value is not None and value < arg
            elif op == "$exists":
                ok = (value is not MISSING) == bool(arg)
            else:
                raise NotImplementedError(f"query operator {op}")
            if not ok:
                return False
        return True
    if condition is None:
        return value is MISSING or value is None
    return value is not MISSING and value == condition


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, condition in query.items():
        if key.startswith("$") or "." in key:
            raise NotImplementedError(f"query key {key}")
        if not _matches_value(doc.get(key, MISSING), condition):
            return False
    return True


def apply_update(doc: dict[str, Any], update: dict[str, Any]) -> None:
    for op, fields in update.items():
        for key, value in fields.items():
            if op == "$set":
                doc[key] = copy.deepcopy(value)
            elif op == "$unset":
                doc.pop(key, None)
            elif op == "$inc":
                doc[key] = doc.get(key, 0) + value
            elif op == "$push":
                doc.setdefault(key, []).append(copy.deepcopy(value))
            else:
                raise NotImplementedError(f"update operator {op}")


class MemoryCollection:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def insert_one(self, doc: dict[str, Any]) -> None:
        self.docs.append(copy.deepcopy(doc))

    def find(self, query: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return iter([copy.deepcopy(d) for d in self.docs if matches(d, query or {})])

    def find_one(self, query: dict[str, Any] | None = None) -> dict[str, Any] | None:
        return next(self.find(query), None)

    def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        for doc in self.docs:
            if matches(doc, query):
                apply_update(doc, update)
                return

    def find_one_and_update(
        self,
        query: dict[str, Any],
        update: dict[str, Any],
        return_document: ReturnDocument = ReturnDocument.BEFORE,
    ) -> dict[str, Any] | None:
        for doc in self.docs:
            if matches(doc, query):
                before = copy.deepcopy(doc)
                apply_update(doc, update)
                return copy.deepcopy(doc) if return_document == ReturnDocument.AFTER else before
        return None
