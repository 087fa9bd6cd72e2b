"""The sweeper's judgement of a lease (mp3mesh/core/jobs.py), on a clock the test turns."""

from __future__ import annotations

from typing import Any

from mp3mesh.core import jobs

MP3_QUEUE, VIDEO_QUEUE = "mp3", "video"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(renewals: int, claim: str = "a", lease: float = 6.0) -> dict[str, Any]:
    return {"_id": 1, "claim": claim, "renewals": renewals, "lease_seconds": lease}


def watched(looks: list[tuple[float, dict[str, Any]]], max_gap: float = 3.0) -> list[float]:
    """When (on the watch's clock) the holder was judged silent, over ``looks``."""
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=max_gap, clock=clock)
    silent = []
    for at, seen in looks:
        clock.now = at
        if watch.look([seen]):
            silent.append(at)
    return silent


def test_a_holder_is_silent_after_a_whole_lease_without_a_renewal() -> None:
    looks = [(float(t), record(1)) for t in range(0, 8)]
    assert watched(looks) == [6.0, 7.0]


def test_a_renewal_or_a_new_claim_starts_the_lease_over() -> None:
    looks = [(0.0, record(1)), (2.0, record(1)), (4.0, record(2)), (6.0, record(2))]
    assert watched(looks) == []
    looks = [(0.0, record(1)), (5.0, record(1, claim="b")), (10.0, record(1, claim="b"))]
    assert watched(looks, max_gap=10) == []


def test_time_the_watch_could_not_look_does_not_count() -> None:
    """A store outage (or this process stalled) between looks: the holder could not renew
    either, so the lease is watched anew from the next look."""
    looks = [(0.0, record(1)), (1.0, record(1)), (13.0, record(1)), (14.0, record(1))]
    assert watched(looks) == []
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=3.0, clock=clock)
    for at in (0.0, 1.0, 2.0, 3.0, 4.0):
        clock.now = at
        watch.look([record(1)])
    watch.forget()  # a failed look
    clock.now = 6.0
    assert watch.look([record(1)]) == []


def test_a_restarted_watch_waits_a_whole_lease_again() -> None:
    clock = Clock()
    watch = jobs.LeaseWatch(max_gap=3.0, clock=clock)
    silent = []
    for at in range(0, 14):
        clock.now = float(at)
        if watch.look([record(1)]):
            silent.append(at)
            watch.restart(1)
    assert silent == [6, 13]


def test_a_record_without_a_lease_gets_the_default() -> None:
    looks = [(0.0, record(1, lease=0)), (30.0, record(1, lease=0)), (60.0, record(1, lease=0))]
    assert watched(looks, max_gap=100) == [60.0]
