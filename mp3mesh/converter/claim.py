"""One converter's hold on one job: its fenced writes and the lease that keeps it.

A claim draws a new token (mp3mesh/core/jobs.py, ``claim``); every later write of this holder
is conditioned on it. If the holder stalls past its lease (a paused VM, a thrashing node,
SIGSTOP), the gateway's sweeper puts the job back and another converter claims it under
a new token: from then on this holder's writes match nothing. The first one that does
raises :class:`JobLost` and sets :attr:`Claim.lost`, which stops its ffmpeg; the holder
then removes its own partial MP3 and settles its message without announcing anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.synchronous.collection import Collection
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from mp3mesh.core import jobs
from mp3mesh.core.store_errors import is_store_outage

log = structlog.get_logger()

# How long a final write (the MP3, SUCCEEDED, FAILED) keeps being retried through a store
# outage before the attempt is given up as failed: the conversion is worth waiting for.
FINAL_WRITE_SECONDS = 120.0
# How often a holder reads its job's record while it works, to notice a cancel or a
# delete by the job's owner (both clear the claim). Polling the one record by _id is
# the whole cost; the record is the truth, where a notice on the broker could be lost
# and would need this poll behind it anyway (the stand-in has no change streams).
# Half a second keeps ffmpeg's stop within the 2 s the API promises (POLL_SECONDS of
# the transcoder's wait loop on top).
CANCEL_POLL_SECONDS = 0.5


class JobLost(Exception):
    """Another converter holds the job now: this holder's work on it is thrown away."""


def new_token() -> str:
    """A claim's token. Text, not an ObjectId (mp3mesh/core/nx27017.py: ids queried outside
    ``_id`` are text)."""
    return uuid.uuid4().hex


class Claim:
    """The holder's side of a claimed job: ``job`` is the record as claimed."""

    def __init__(
        self,
        collection: Collection[dict[str, Any]],
        job: dict[str, Any],
        on_change: Callable[[dict[str, Any]], None],
    ) -> None:
        self.collection = collection
        self.job = job
        self.job_id, self.token = job["_id"], job["claim"]
        # Set once a write showed the job was taken over: stops ffmpeg and the renewals.
        self.lost = threading.Event()
        # Why the job left this holder, once known from the record: "cancelled",
        # "deleted", or "taken over".
        self.lost_because = ""
        # Seconds per stage of this attempt (jobs.STAGES), filled in as it goes.
        self.stages: dict[str, float] = {"queued": jobs.queued_seconds(job)}
        # What the probe of the video found, once read: written with the ffmpeg command
        # before ffmpeg runs, or with the final write of a job refused on it.
        self.probe: dict[str, Any] | None = None
        # Gets the record after each change, for the job's watchers.
        self._on_change = on_change

    def write(self, change: jobs.Change) -> dict[str, Any]:
        """Apply one of this holder's transitions; the record after, which the job's
        watchers are shown. JobLost if it matched nothing."""
        record = self.collection.find_one_and_update(
            change.filter, change.update, return_document=ReturnDocument.AFTER
        )
        if record is None:
            self.lost.set()
            raise JobLost(f"job {self.job_id} was taken over by another converter")
        self._on_change(record)
        return record

    def note(self, change: jobs.Change) -> None:
        """Apply one of this holder's writes that watchers are not shown (what the full
        view or a crash's cleanup reads): an update, so the store sends no record back.
        JobLost if it matched nothing."""
        if not self.collection.update_one(change.filter, change.update).matched_count:
            self.lost.set()
            raise JobLost(f"job {self.job_id} was taken over by another converter")

    def write_final(self, change: jobs.Change) -> dict[str, Any]:
        """:meth:`write`, retried through a store outage for up to FINAL_WRITE_SECONDS
        (the transitions it is used for are repeatable by their holder)."""
        for attempt in retrying():
            with attempt:
                return self.write(change)
        raise AssertionError("unreachable: tenacity reraises")

    def progress(self, percent: int) -> None:
        """Best effort: a store that does not answer costs the watchers a percentage,
        never the conversion."""
        change = jobs.progress(self.job_id, self.token, percent)
        try:
            record = self.collection.find_one_and_update(
                change.filter, change.update, return_document=ReturnDocument.AFTER
            )
        except PyMongoError as exc:
            log.warning("progress not recorded", job_id=str(self.job_id), error=repr(exc))
            return
        if record is not None:
            self._on_change(record)

    def check(self) -> None:
        """Raise JobLost if a write already showed the job was taken over."""
        if self.lost.is_set():
            raise JobLost(f"job {self.job_id} was taken over by another converter")

    def _look(self, renewal: jobs.Change | None = None) -> bool:
        """One renewal of the lease (``renewal``) or, without one, one read of the record:
        whether this holder still holds the job (or finished it itself: a renewal may
        cross its own final write). Not any more: :attr:`lost` set, with the reason."""
        if (
            renewal is not None
            and self.collection.update_one(renewal.filter, renewal.update).matched_count
        ):
            return True
        record = self.collection.find_one({"_id": self.job_id}, {"claim": 1, "status": 1})
        if record is not None and (
            record.get("claim") == self.token or jobs.finished_by(record, self.token)
        ):
            return True
        if record is None:
            self.lost_because = "deleted"
        elif record.get("status") == jobs.CANCELLED:
            self.lost_because = "cancelled"
        else:
            self.lost_because = "taken over"
        log.info("job left this converter", job_id=str(self.job_id), why=self.lost_because)
        self.lost.set()
        return False

    @contextmanager
    def renewed(
        self, lease_seconds: float, cancel_poll: float = CANCEL_POLL_SECONDS
    ) -> Iterator[None]:
        """Renew the lease every third of it while the block runs, and in between read
        the record every ``cancel_poll`` seconds for a cancel or delete: one thread per
        job does both (a renewal is a look too). A renewal that matches nothing, or a look
        that finds the claim gone, sets :attr:`lost`; a store that does not answer is only
        logged (the sweeper does not count time it could not watch either)."""
        done = threading.Event()
        renewal = jobs.renew(self.job_id, self.token)

        def watch() -> None:
            renew_at = time.monotonic() + lease_seconds / 3
            while not done.wait(min(cancel_poll, max(renew_at - time.monotonic(), 0.0))):
                due = time.monotonic() >= renew_at
                try:
                    if not self._look(renewal if due else None):
                        return
                except PyMongoError as exc:
                    say = log.warning if due else log.debug
                    say("could not look at the job", job_id=str(self.job_id), error=repr(exc))
                if due:
                    renew_at = time.monotonic() + lease_seconds / 3

        watcher = threading.Thread(target=watch, name="lease", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()


def retrying() -> Retrying:
    """Retries of a write through a store outage, for up to FINAL_WRITE_SECONDS."""
    return Retrying(
        retry=retry_if_exception(is_store_outage),
        wait=wait_exponential(multiplier=0.5, max=5),
        stop=stop_after_delay(FINAL_WRITE_SECONDS),
        reraise=True,
    )
