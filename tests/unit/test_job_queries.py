"""The job record's queries (mp3mesh/core/jobs.py) and the indexes they need."""

from __future__ import annotations

from bson import ObjectId

from mp3mesh.core import jobs

VIDEO_QUEUE = "video"


def test_every_lookup_of_the_relay_and_housekeeping_starts_from_an_indexed_field() -> None:
    """Each query the relay, housekeeping and the owner's reads run names a field of
    jobs.INDEXED (or _id), which FileStore.ensure_indexes indexes (on the wire server:
    tests/integration/test_gateway_store.py)."""
    queries = {
        "held": jobs.held(),
        "unannounced_queued": jobs.unannounced_queued(),
        "due_for_expiry": jobs.due_for_expiry(0.0),
        "expired_before": jobs.expired_before(0.0),
        "take_announcement": jobs.take_announcement([VIDEO_QUEUE], 0.0, 0.0).filter,
        "owned": jobs.owned("u1", ObjectId()),
        "owned_with_mp3": jobs.owned_with_mp3("u1", ObjectId()),
    }
    for name, query in queries.items():
        assert set(query) & {*jobs.INDEXED, "_id"}, name
