"""mp3mesh/converter/slots.py: no more ffmpegs at once than slots, and a job waiting for one can
be called off (the converter stopping, the job taken over) without holding anything."""

from __future__ import annotations

import threading

import pytest

from devstack import wait_for
from mp3mesh.converter.slots import FfmpegSlots


class CalledOff(Exception):
    pass


def test_a_job_waits_for_a_free_slot() -> None:
    slots = FfmpegSlots(1)
    holding, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with slots.slot(lambda: None):
            holding.set()
            release.wait(30)

    def second() -> None:
        with slots.slot(lambda: None):
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert holding.wait(30)
    threads[1].start()
    assert not second_in.wait(0.5), "two ffmpegs in one slot"
    release.set()
    assert second_in.wait(30)
    for thread in threads:
        thread.join(30)


def test_a_waiting_job_called_off_holds_no_slot() -> None:
    slots = FfmpegSlots(1)
    stop = threading.Event()
    outcome: list[BaseException] = []

    def check() -> None:
        if stop.is_set():
            raise CalledOff

    def waiter() -> None:
        try:
            with slots.slot(check):
                outcome.append(AssertionError("got a slot that was taken"))
        except CalledOff as exc:
            outcome.append(exc)

    with slots.slot(lambda: None):
        thread = threading.Thread(target=waiter)
        thread.start()
        stop.set()
        wait_for(lambda: bool(outcome), "the waiter to give up", timeout=30)
        thread.join(30)
    assert isinstance(outcome[0], CalledOff)
    calls: list[int] = []

    def only_once() -> None:  # a second call would mean the slot had to be waited for
        calls.append(1)
        if len(calls) > 1:
            raise CalledOff

    with slots.slot(only_once):
        pass


def test_check_runs_before_taking_a_free_slot() -> None:
    with pytest.raises(CalledOff), FfmpegSlots(2).slot(_raise):
        raise AssertionError("ran although called off")


def _raise() -> None:
    raise CalledOff
