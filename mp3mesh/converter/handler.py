"""Handles one VideoUploaded: GridFS -> temp file -> ffmpeg -> GridFS, then JobFinished.

The job moves QUEUED -> PROCESSING -> SUCCEEDED | FAILED through the transitions of
mp3mesh/core/jobs.py, each guarded by the state it starts from and, once claimed, by this
converter's claim (mp3mesh/converter/claim.py): a redelivered message never converts a finished
job again, it only re-announces it (the notification service ignores repeats), and a
converter that lost its job to another can no longer change it.

A finished job's JobFinished is recorded on the job (an outbox mark) together with its
final status, then published; the gateway's relay publishes whatever the broker did not
confirm, so a broker cut never holds back the user's result.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import pika
import structlog
from bson import ObjectId
from bson.errors import InvalidId
from google.protobuf.json_format import ParseError
from prometheus_client import Counter, Histogram
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.synchronous.database import Database

from mp3mesh.converter.claim import Claim, JobLost, new_token, retrying
from mp3mesh.converter.settings import ConverterSettings
from mp3mesh.converter.slots import FfmpegSlots
from mp3mesh.converter.transcode import (
    Deadline,
    Interrupted,
    MediaInfo,
    ShuttingDown,
    Transcoder,
    Unconvertible,
)
from mp3mesh.core import gridfs_io, jobs, options, tracing
from mp3mesh.core.amqp.consumer import Outcome, Requeue, UndecodableMessage, decode
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.core.options import Effective
from mp3mesh.events.v1 import events_pb2

log = structlog.get_logger()


JOBS = Counter(
    "mp3mesh_jobs_total", "Jobs that ended, by outcome: succeeded, failed.", ("outcome",)
)
CONVERSION_SECONDS = Histogram(
    "mp3mesh_conversion_seconds",
    "Time to convert one job that succeeded: video in, ffmpeg, MP3 stored.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)

# A job's percentage: claimed at PROGRESS_CLAIMED, the video copied out of GridFS at
# PROGRESS_FFMPEG_START, then ffmpeg's share of the media done up to PROGRESS_FFMPEG_END,
# 100 once the MP3 is stored.
PROGRESS_CLAIMED, PROGRESS_FFMPEG_START, PROGRESS_FFMPEG_END = 1, 5, 95
# The job record (and so every watcher) gets a new percentage at most this often.
PROGRESS_INTERVAL_SECONDS = 0.25
# How long a finished job's JobFinished may wait for the broker's confirm before it is
# left to the gateway's outbox relay.
ANNOUNCE_SECONDS = 10.0


class Progress:
    """One conversion's percentage, written forward only and at most every
    ``interval`` seconds, so a long file moves smoothly without rewriting the record on
    each of ffmpeg's reports."""

    def __init__(
        self,
        write: Callable[[int], None],
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        written_at: float = float("-inf"),
    ) -> None:
        self.write, self.interval, self.clock = write, interval, clock
        self.percent = PROGRESS_CLAIMED
        # When the record last got a percentage (the claim writes PROGRESS_CLAIMED).
        self._written_at = written_at

    def reached(self, percent: int) -> None:
        """A step is done: written now, whatever the interval."""
        self._write(percent)

    def ffmpeg(self, done: float) -> None:
        """ffmpeg has done this fraction of the media."""
        span = PROGRESS_FFMPEG_END - PROGRESS_FFMPEG_START
        percent = PROGRESS_FFMPEG_START + int(min(max(done, 0.0), 1.0) * span)
        if self.clock() - self._written_at >= self.interval:
            self._write(percent)

    def _write(self, percent: int) -> None:
        if percent > self.percent:
            self.percent, self._written_at = percent, self.clock()
            self.write(percent)


def mp3_name(filename: str) -> str:
    """The MP3's file name: the upload's name with its extension replaced. Any name the
    client sent works, including "/", "." or ".." (pathlib's with_suffix refuses those)."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{stem.strip('.') or 'audio'}.mp3"


class LeaseHeld(Exception):
    """Another converter holds the job's lease: the message is retried later, when that
    converter has finished it (then it is only announced again) or its lease ran out."""


def work_dir_prefix(pid: int | None = None) -> str:
    """Temp directories carry their converter's pid, so a sweep can tell whose they are."""
    return f"mp3mesh-{os.getpid() if pid is None else pid}-"


def sweep_work_dir(work_dir: str | None) -> list[Path]:
    """Remove the temp directories of converters that are gone (killed mid-job, each left
    a whole video behind); returns what it removed."""
    removed = []
    for path in Path(work_dir or tempfile.gettempdir()).glob("mp3mesh-*-*"):
        pid = path.name.split("-")[1]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def _timed(stages: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's time to ``stages[stage]``, however the block ends."""
    started = time.monotonic()
    try:
        yield
    finally:
        stages[stage] = round(stages.get(stage, 0.0) + time.monotonic() - started, 4)


def _log_unsent(sent: Future[None]) -> None:
    if (exc := sent.exception()) is not None:
        log.info("job change not announced; watchers read it later", error=repr(exc))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Converter:
    def __init__(
        self,
        db: Database[Any],
        settings: ConverterSettings,
        event_publisher: ThreadedPublisher | None = None,
    ) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]
        self.settings = settings
        # Announces each change of a job to its watchers (the job.events topic) and
        # publishes finished jobs' JobFinished (the MP3 queue).
        self.event_publisher = event_publisher
        self.transcoder = Transcoder(
            Deadline(
                settings.ffmpeg_timeout_base_seconds, settings.ffmpeg_timeout_per_media_second
            ),
            settings.max_media_seconds,
        )
        # ffmpegs at once; more jobs than that are in hand (mp3mesh/converter/slots.py).
        self.slots = FfmpegSlots(settings.conversions)
        # Removals of converted videos, after their jobs were announced.
        self._cleanup = ThreadPoolExecutor(1, thread_name_prefix="cleanup")
        # Who made an attempt, in the job's history.
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def stop(self) -> None:
        """Signal-safe: the jobs in hand go back to the queue within a second or two."""
        self.transcoder.stop()

    def close(self) -> None:
        """After the consumers stopped: finish the video removals still queued."""
        self._cleanup.shutdown(wait=True)

    def handle(self, body: bytes, properties: pika.BasicProperties) -> Outcome:
        event = decode(body, properties, events_pb2.VideoUploaded)
        try:
            job_id = ObjectId(event.job_id)
        except InvalidId as exc:
            raise UndecodableMessage(f"job id {event.job_id!r} is not an ObjectId") from exc
        tracing.set_job(event.job_id)
        log.info("job received", job_id=event.job_id)

        claim = self._claim(job_id)
        if claim is None:
            return self._not_claimed(job_id)
        if claim.job["attempts"] > self.settings.max_attempts:
            return self._fail(
                claim,
                f"conversion was started {claim.job['attempts'] - 1} times and never finished",
            )
        try:
            with claim.renewed(self.settings.lease_seconds):
                return self._convert(claim)
        except JobLost:
            return self._lost(claim)
        except Unconvertible as exc:
            return self._fail(claim, str(exc))
        except ShuttingDown as exc:
            self._put_back(claim)
            raise Requeue(str(exc)) from exc
        except Exception as exc:
            if claim.lost.is_set():  # ffmpeg cancelled, or a read failed under a takeover
                return self._lost(claim)
            if claim.job["attempts"] < self.settings.max_attempts:
                self._release(claim, str(exc))
                raise  # transient (ffmpeg interrupted, a store error): the consumer retries
            log.exception("job failed on its last attempt", job_id=str(job_id))
            what = "was interrupted" if isinstance(exc, Interrupted) else "hit an internal error"
            return self._fail(
                claim, f"conversion {what} {claim.job['attempts']} times; last: {exc}"
            )

    def give_up(self, body: bytes, properties: pika.BasicProperties, reason: str) -> Outcome:
        """The message is going to the dead-letter queue: end its job, visibly, unless a
        converter holds it (that one finishes it, or the sweeper puts it back if it died,
        with a new announcement)."""
        event = decode(body, properties, events_pb2.VideoUploaded)
        job = self.jobs.find_one({"_id": ObjectId(event.job_id)})
        if job is None:
            return Outcome()
        if job["status"] in jobs.FINAL:
            return self._finished(job)
        change = jobs.give_up(
            job["_id"],
            f"conversion could not be completed: {reason}",
            expires_at=self._expires_at(),
            announce=self._pending_finish(),
        )
        if (failed := self._apply(change)) is not None:
            JOBS.labels("failed").inc()  # its video stays for a retry, until it expires
            self._announce(failed)
        return Outcome()

    def _claim(self, job_id: ObjectId) -> Claim | None:
        """Take the job if it is queued, under a new token."""
        change = jobs.claim(
            job_id,
            new_token(),
            lease_seconds=self.settings.lease_seconds,
            progress=PROGRESS_CLAIMED,
            converter=self.name,
        )
        job = self._apply(change)
        return None if job is None else Claim(self.jobs, job, self._changed)

    def _not_claimed(self, job_id: ObjectId) -> Outcome:
        """The message's job could not be claimed: gone, finished, or held by another."""
        existing = self.jobs.find_one({"_id": job_id})
        if existing is None:
            log.warning("job no longer exists; dropping message", job_id=str(job_id))
            return Outcome()
        if existing["status"] == jobs.CANCELLED:
            log.info("job was cancelled; dropping message", job_id=str(job_id))
            return Outcome()
        if existing["status"] not in jobs.FINAL:
            raise LeaseHeld(f"job {job_id} is being converted elsewhere; looking again later")
        log.info("job already finished; announcing it again", job_id=str(job_id))
        return self._finished(existing)

    def _lost(self, claim: Claim) -> Outcome:
        """The job left this converter (cancelled or deleted by its owner, or taken over
        by another converter): this attempt leaves nothing behind (its MP3 was removed on
        the way out) and announces nothing; the message is settled."""
        log.warning("job lost; this attempt is dropped",
                    job_id=str(claim.job_id), why=claim.lost_because or "taken over")  # fmt: skip
        return Outcome()

    def _release(self, claim: Claim, reason: str) -> None:
        """A passing failure: the job is queued again at once for the retried message,
        instead of waiting out its lease. If the store does not answer, the lease runs out
        and housekeeping queues it."""
        try:
            claim.write(jobs.release(claim.job_id, claim.token, reason))
        except (JobLost, PyMongoError) as exc:
            log.info("job not released; its lease will run out", job_id=str(claim.job_id),
                     error=repr(exc))  # fmt: skip

    def _put_back(self, claim: Claim) -> None:
        """Our own shutdown: the job waits in the queue as if this attempt never started."""
        try:
            claim.write(jobs.put_back(claim.job_id, claim.token))
        except JobLost:
            return
        log.info("job put back for the next start", job_id=str(claim.job_id))

    def _convert(self, claim: Claim) -> Outcome:
        """Video in, MP3 out, job SUCCEEDED; the video is removed afterwards, off this
        conversion's time (the MP3 is what the user waits for)."""
        job = claim.job
        started = time.monotonic()
        # The claim just wrote PROGRESS_CLAIMED: a job whose video is in hand and whose
        # ffmpeg starts within the interval goes on without another write for the start.
        progress = Progress(claim.progress, written_at=started)
        with tempfile.TemporaryDirectory(
            prefix=work_dir_prefix(), dir=self.settings.work_dir
        ) as tmp:
            # No extension on the input: ffmpeg then judges the content, not the client's
            # name (a ".txt" would select its tty demuxer and "convert" text as video).
            video, mp3 = Path(tmp) / "video", Path(tmp) / "audio.mp3"
            with _timed(claim.stages, "fetch"):
                self._fetch_video(claim, video)
            with self.slots.slot(lambda: self._still_wanted(claim)):
                progress.ffmpeg(0.0)  # PROGRESS_FFMPEG_START, unless just written
                with (
                    tracing.tracer.start_as_current_span("ffmpeg"),
                    _timed(claim.stages, "convert"),
                ):
                    info = self.transcoder.extract_mp3(
                        video,
                        mp3,
                        self.settings.mp3_bitrate_kbps,
                        self.settings.mp3_sample_rate,
                        on_progress=progress.ffmpeg,
                        cancel=claim.lost,
                        options=self._options(job),
                        filename=job.get("filename") or "",
                        on_start=lambda source, command: self._record_run(claim, source, command),
                    )
            self.transcoder.check_stopping()
            with _timed(claim.stages, "store"):
                mp3_id, size = self._store_mp3(claim, mp3)
        done = self._succeed(claim, mp3_id, info.duration, size)
        JOBS.labels("succeeded").inc()
        CONVERSION_SECONDS.observe(time.monotonic() - started)
        log.info("job succeeded", job_id=str(job["_id"]), duration=info.duration, mp3_size=size)
        self._drop_video_later(job["_id"])
        self._announce(done)
        return Outcome()

    def _options(self, job: dict[str, Any]) -> Effective:
        """The job's options (checked by the gateway), the defaults being this converter's
        MP3_BITRATE_KBPS and MP3_SAMPLE_RATE. A record holding values out of range
        (written by hand) makes the job fail, saying which."""
        try:
            return options.effective(
                options.from_record(job.get("options")),
                default_bitrate_kbps=self.settings.mp3_bitrate_kbps,
                default_sample_rate_hz=self.settings.mp3_sample_rate,
            )
        except (options.OptionError, ParseError) as exc:
            raise Unconvertible(f"the job's options are invalid: {exc}") from exc

    def _still_wanted(self, claim: Claim) -> None:
        """While a job waits for an ffmpeg slot: ShuttingDown or JobLost ends the wait."""
        self.transcoder.check_stopping()
        claim.check()

    def _record_run(self, claim: Claim, source: MediaInfo, command: list[str] | None) -> None:
        """Keep on the job what the probe found and the exact ffmpeg command about to
        run (the job's full view shows them), in one write just before each ffmpeg run;
        the probe alone (``command`` None) waits for it, or for the final write of a job
        refused before ffmpeg ran (one store round trip less per job)."""
        claim.probe = source.details
        if command is not None:
            claim.note(
                jobs.record_run(
                    claim.job_id, claim.token, probe=source.details, ffmpeg_args=command
                )
            )

    def _fetch_video(self, claim: Claim, video: Path) -> None:
        """Copy the job's video out of GridFS into ``video`` (ffmpeg needs a seekable file:
        an MP4 may keep its index at the end)."""
        with video.open("wb") as out:
            for chunk in gridfs_io.iter_file(self.db, gridfs_io.VIDEOS, claim.job_id):
                self.transcoder.check_stopping()
                claim.check()
                out.write(chunk)

    def _store_mp3(self, claim: Claim, mp3: Path) -> tuple[ObjectId, int]:
        """Copy the MP3 into GridFS under this claim; returns its id and size. Its id is
        on the job first, so that what a crash in the middle leaves can be found. Retried
        through a store outage, each try a new file (the previous one removed)."""
        for attempt in retrying():
            with attempt:
                mp3_id = ObjectId()
                claim.note(jobs.store(claim.job_id, claim.token, mp3_id))
                try:
                    return mp3_id, self._write_mp3(claim, mp3, mp3_id)
                except BaseException:
                    self._discard_mp3(mp3_id)
                    raise
        raise AssertionError("unreachable: tenacity reraises")

    def _write_mp3(self, claim: Claim, mp3: Path, mp3_id: ObjectId) -> int:
        job = claim.job
        metadata = {
            "owner_id": job["owner_id"],
            "job_id": str(job["_id"]),
            "claim": claim.token,
            "content_type": "audio/mpeg",
        }
        with mp3.open("rb") as source:
            return gridfs_io.write_file(
                self.db,
                gridfs_io.MP3S,
                mp3_id,
                mp3_name(job.get("filename") or ""),
                source,
                metadata,
            )

    def _succeed(
        self, claim: Claim, mp3_id: ObjectId, duration: float, size: int
    ) -> dict[str, Any]:
        """Mark the job SUCCEEDED with its MP3, if it is still ours: if not, our MP3 goes
        and JobLost says why."""
        change = jobs.succeed(
            claim.job_id,
            claim.token,
            mp3_id=mp3_id,
            duration=duration,
            size=size,
            expires_at=self._expires_at(),
            announce=self._pending_finish(),
            stages=claim.stages,
        )
        try:
            return claim.write_final(change)
        except JobLost:
            self._discard_mp3(mp3_id)
            raise

    def _discard_mp3(self, mp3_id: ObjectId) -> None:
        """Remove one of our own MP3s (best effort: the job's retention removes every MP3
        written for it)."""
        try:
            gridfs_io.discard(self.db, gridfs_io.MP3S, mp3_id)
        except PyMongoError as exc:
            log.warning("could not remove a discarded MP3", mp3_id=str(mp3_id), error=repr(exc))

    def _drop_video_later(self, job_id: ObjectId) -> None:
        """The job is over (its MP3 exists, or it failed for good): its video would only
        take space, unless KEEP_SOURCE_VIDEO."""
        if not self.settings.keep_source_video:
            self._cleanup.submit(self._drop_video, job_id)

    def _drop_video(self, job_id: ObjectId) -> None:
        """Off the job's time. Should this fail, the retention sweep removes the video when
        the job expires."""
        try:
            gridfs_io.discard(self.db, gridfs_io.VIDEOS, job_id)
        except PyMongoError as exc:
            log.warning("could not remove the converted video", job_id=str(job_id),
                        error=repr(exc))  # fmt: skip

    def _fail(self, claim: Claim, reason: str) -> Outcome:
        log.info("job failed", job_id=str(claim.job_id), reason=reason)
        change = jobs.fail(
            claim.job_id,
            claim.token,
            reason,
            expires_at=self._expires_at(),
            announce=self._pending_finish(),
            stages=claim.stages,
            probe=claim.probe,
        )
        try:
            failed = claim.write_final(change)
        except JobLost:
            return self._lost(claim)
        JOBS.labels("failed").inc()
        # The video stays until the job expires, so that its owner can retry it.
        self._announce(failed)
        return Outcome()

    def _expires_at(self) -> float:
        return time.time() + self.settings.retention_seconds

    def _pending_finish(self) -> dict[str, Any]:
        """The outbox mark of a job's JobFinished (see mp3mesh/gateway/relay.py)."""
        return jobs.pending_announcement(self.settings.mp3_queue, time.time(), tracing.carrier())

    def _announce(self, job: dict[str, Any]) -> None:
        """Publish the finished job's JobFinished now and clear its outbox mark once the
        broker confirmed it. Whatever goes wrong (the broker cut off, a slow confirm), the
        mark stays and the gateway's relay publishes it: the result never waits on this
        message's retry delays."""
        if self.event_publisher is None:
            return
        started = time.monotonic()
        sent = self.event_publisher.publish(
            job["announce_queue"], jobs.job_finished(job), str(job["_id"])
        )
        try:
            sent.result(timeout=ANNOUNCE_SECONDS)
            change = jobs.announced(
                job["_id"],
                job["announce_queue"],
                job["announce_at"],
                took=round(time.monotonic() - started, 4),
            )
            self.jobs.update_one(change.filter, change.update)
        except Exception as exc:
            sent.cancel()  # not sent yet: the relay's copy will be the only one
            log.info("job's result left to the outbox relay", job_id=str(job["_id"]),
                     error=repr(exc))  # fmt: skip

    def _apply(self, change: jobs.Change) -> dict[str, Any] | None:
        """Apply a transition no holder's token guards; the record after, or None."""
        job = self.jobs.find_one_and_update(
            change.filter, change.update, return_document=ReturnDocument.AFTER
        )
        if job is not None:
            self._changed(job)
        return job

    def _changed(self, job: dict[str, Any]) -> None:
        """Announce a change of the job to its watchers (best effort: they also read the
        record)."""
        if self.event_publisher is not None:
            notice = jobs.job_changed(job)
            sent = self.event_publisher.publish_event(
                self.settings.job_events_exchange, notice.job.id, notice
            )
            sent.add_done_callback(_log_unsent)

    def _finished(self, job: dict[str, Any]) -> Outcome:
        """Announce a finished job again, with the message's settlement."""
        return Outcome(publish=[(self.settings.mp3_queue, jobs.job_finished(job), str(job["_id"]))])
