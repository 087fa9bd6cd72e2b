"""tests/unit/test_job_control.py's transitions on the MongoDB-wire server, through plain
pymongo as a real MongoDB would take them (the unit tests apply them in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.collection import Collection

from mp3mesh.core import jobs
from tests.unit.test_job_control import *  # noqa: F403  (the same tests, on the wire)


@pytest.fixture
def collection(wire_mongo: MongoClient) -> Iterator[Collection]:  # type: ignore[no-redef]
    name = f"control_{ObjectId()}"
    yield wire_mongo[name][jobs.COLLECTION]
    wire_mongo.drop_database(name)
