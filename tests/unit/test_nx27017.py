"""The stand-in's adaptations read both what nx-27017 answers and what MongoDB answers."""

import datetime as dt

from mp3mesh.core.nx27017 import pushed_documents


def test_pushed_documents_read_extended_json_text_and_documents_alike() -> None:
    at = dt.datetime(2026, 12, 5, 13, 0, 1, 500000)  # naive UTC, as pymongo reads dates
    as_text = '{"token": "t1", "at": {"$date": "2026-12-05T13:00:01.500Z"}}'
    as_document = {"token": "t2", "at": at}
    first, second = pushed_documents([as_text, as_document])
    assert first["token"] == "t1" and first["at"] == at
    assert second == as_document
    assert pushed_documents(None) == []
