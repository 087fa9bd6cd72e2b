"""Handles one VideoUploaded: GridFS -> temp file -> ffmpeg -> GridFS, then JobFinished.

The job document moves QUEUED -> PROCESSING -> SUCCEEDED | FAILED with guarded updates,
so a redelivered message never converts a finished job again; it only re-announces it
(the notification service ignores repeats).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
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
from prometheus_client import Counter, Histogram
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.synchronous.database import Database

from converter.settings import ConverterSettings
from converter.transcode import Deadline, Interrupted, ShuttingDown, Transcoder, Unconvertible
from meshcore import gridfs_io, jobs, tracing
from meshcore.amqp import Outcome, Requeue, ThreadedPublisher, UndecodableMessage, decode
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


class Progress:
    """One conversion's percentage, written forward only and at most every
    ``interval`` seconds, so a long file moves smoothly without rewriting the record on
    each of ffmpeg's reports."""

    def __init__(
        self,
        write: Callable[[int], None],
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.interval, self.clock = write, interval, clock
        self.percent = PROGRESS_CLAIMED
        self._written_at = float("-inf")

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
        events: ThreadedPublisher | None = None,
    ) -> None:
        self.db = db
        self.jobs = db[jobs.COLLECTION]
        self.settings = settings
        # Where each change of a job is announced to its watchers (the job.events topic).
        self.events = events
        self.transcoder = Transcoder(
            Deadline(settings.ffmpeg_timeout_base_seconds, settings.ffmpeg_timeout_per_media_second)
        )
        # Removals of converted videos, after their jobs were announced.
        self._cleanup = ThreadPoolExecutor(1, thread_name_prefix="cleanup")

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

        job = self._claim(job_id)
        if job is None:
            existing = self.jobs.find_one({"_id": job_id})
            if existing is None:
                log.warning("job no longer exists; dropping message", job_id=event.job_id)
                return Outcome()
            if existing["status"] not in jobs.FINAL:
                raise LeaseHeld(f"job {job_id} is being converted elsewhere; looking again later")
            log.info("job already finished; announcing it again", job_id=event.job_id)
            return self._finished(existing)

        if job.get("mp3_pending_id") is not None:
            # An earlier attempt died while storing its MP3: remove what it left.
            gridfs_io.discard(self.db, gridfs_io.MP3S, job["mp3_pending_id"])
        if job["attempts"] > self.settings.max_attempts:
            return self._fail(
                job, f"conversion was started {job['attempts'] - 1} times and never finished"
            )
        try:
            with self._lease(job_id):
                return self._convert(job)
        except Unconvertible as exc:
            return self._fail(job, str(exc))
        except ShuttingDown as exc:
            self._put_back(job)
            raise Requeue(str(exc)) from exc
        except Exception as exc:
            if job["attempts"] < self.settings.max_attempts:
                raise  # transient (ffmpeg interrupted, a store error): the consumer retries
            log.exception("job failed on its last attempt", job_id=str(job["_id"]))
            what = "was interrupted" if isinstance(exc, Interrupted) else "hit an internal error"
            return self._fail(job, f"conversion {what} {job['attempts']} times; last: {exc}")

    def give_up(self, body: bytes, properties: pika.BasicProperties, reason: str) -> Outcome:
        """The message is going to the dead-letter queue: end its job, visibly (unless a
        converter holds it right now: that one finishes it)."""
        event = decode(body, properties, events_pb2.VideoUploaded)
        job = self.jobs.find_one({"_id": ObjectId(event.job_id)})
        if job is None:
            return Outcome()
        if job["status"] in jobs.FINAL:
            return self._finished(job)
        if job.get("locked_until", 0) > time.time():
            return Outcome()
        return self._fail(job, f"conversion could not be completed: {reason}")

    def _claim(self, job_id: ObjectId) -> dict[str, Any] | None:
        """Take the job if it is queued or its last converter's lease ran out."""
        now = time.time()
        update = {
            "$set": {
                "status": jobs.PROCESSING,
                "progress": PROGRESS_CLAIMED,
                "updated": jobs.now(),
                "locked_until": now + self.settings.lease_seconds,
            },
            "$inc": {"attempts": 1},
        }
        active = {"$in": [jobs.QUEUED, jobs.PROCESSING]}
        for lease in ({"$lt": now}, {"$exists": False}):  # no $or: the stand-in mishandles it
            job = self._change({"_id": job_id, "status": active, "locked_until": lease}, update)
            if job is not None:
                return job
        return None

    @contextmanager
    def _lease(self, job_id: ObjectId) -> Iterator[None]:
        """Renew the job's lease while the block runs. A converter that dies stops renewing,
        so another one (a redelivery, or the gateway's sweeper) takes the job over."""
        done = threading.Event()
        lease = self.settings.lease_seconds

        def renew() -> None:
            while not done.wait(lease / 3):
                try:
                    self.jobs.update_one(
                        {"_id": job_id, "status": jobs.PROCESSING},
                        {"$set": {"locked_until": time.time() + lease}},
                    )
                except PyMongoError as exc:
                    log.warning(
                        "could not renew the job's lease", job_id=str(job_id), error=str(exc)
                    )

        renewer = threading.Thread(target=renew, name="lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()

    def _put_back(self, job: dict[str, Any]) -> None:
        """Our own shutdown: the job waits in the queue as if this attempt never started."""
        if job.get("mp3_pending_id") is not None:
            gridfs_io.discard(self.db, gridfs_io.MP3S, job["mp3_pending_id"])
        self._change(
            {"_id": job["_id"], "status": jobs.PROCESSING},
            {
                "$set": {
                    "status": jobs.QUEUED,
                    "progress": 0,
                    "updated": jobs.now(),
                    "locked_until": 0,
                },
                "$inc": {"attempts": -1},
                "$unset": {"mp3_pending_id": ""},
            },
        )
        log.info("job put back for the next start", job_id=str(job["_id"]))

    def _convert(self, job: dict[str, Any]) -> Outcome:
        """Video in, MP3 out, job SUCCEEDED; the video is removed afterwards, off this
        conversion's time (the MP3 is what the user waits for)."""
        job_id = job["_id"]
        started = time.monotonic()
        progress = Progress(lambda percent: self._progress(job_id, percent))
        with tempfile.TemporaryDirectory(
            prefix=work_dir_prefix(), dir=self.settings.work_dir
        ) as tmp:
            # No extension on the input: ffmpeg then judges the content, not the client's
            # name (a ".txt" would select its tty demuxer and "convert" text as video).
            video, mp3 = Path(tmp) / "video", Path(tmp) / "audio.mp3"
            self._fetch_video(job_id, video)
            progress.reached(PROGRESS_FFMPEG_START)
            with tracing.tracer.start_as_current_span("ffmpeg"):
                info = self.transcoder.extract_mp3(
                    video,
                    mp3,
                    self.settings.mp3_bitrate_kbps,
                    self.settings.mp3_sample_rate,
                    on_progress=progress.ffmpeg,
                )
            self.transcoder.check_stopping()
            mp3_id, size = self._store_mp3(job, mp3)
        done = self._succeed(job_id, mp3_id, info.duration, size)
        if done is None:  # the job vanished or was finished by someone else meanwhile
            gridfs_io.discard(self.db, gridfs_io.MP3S, mp3_id)
            return Outcome()
        JOBS.labels("succeeded").inc()
        CONVERSION_SECONDS.observe(time.monotonic() - started)
        log.info("job succeeded", job_id=str(job_id), duration=info.duration, mp3_size=size)
        if not self.settings.keep_source_video:
            self._cleanup.submit(self._drop_video, job_id)
        return self._finished(done)

    def _fetch_video(self, job_id: ObjectId, video: Path) -> None:
        """Copy the job's video out of GridFS into ``video`` (ffmpeg needs a seekable file:
        an MP4 may keep its index at the end)."""
        with video.open("wb") as out:
            for chunk in gridfs_io.iter_file(self.db, gridfs_io.VIDEOS, job_id):
                self.transcoder.check_stopping()
                out.write(chunk)

    def _store_mp3(self, job: dict[str, Any], mp3: Path) -> tuple[ObjectId, int]:
        """Copy the MP3 into GridFS; returns its id and size. Its id is on the job first,
        so that the next attempt removes what a crash in the middle left."""
        mp3_id = ObjectId()
        self.jobs.update_one({"_id": job["_id"]}, {"$set": {"mp3_pending_id": mp3_id}})
        metadata = {"owner_id": job["owner_id"], "job_id": str(job["_id"])}
        with mp3.open("rb") as source:
            size = gridfs_io.write_file(
                self.db,
                gridfs_io.MP3S,
                mp3_id,
                mp3_name(job.get("filename") or ""),
                source,
                {**metadata, "content_type": "audio/mpeg"},
            )
        return mp3_id, size

    def _succeed(
        self, job_id: ObjectId, mp3_id: ObjectId, duration: float, size: int
    ) -> dict[str, Any] | None:
        """Mark the job SUCCEEDED with its MP3, if it is still ours to finish."""
        return self._change(
            {"_id": job_id, "status": jobs.PROCESSING},
            {
                "$set": {
                    "status": jobs.SUCCEEDED,
                    "progress": 100,
                    "mp3_file_id": mp3_id,
                    # Download looks the job up by it once the MP3 expired (the stand-in
                    # matches ObjectIds only in _id, so the id is kept as text too).
                    "mp3_key": str(mp3_id),
                    "duration": duration,
                    "mp3_size": size,
                    "error": "",
                    "updated": jobs.now(),
                    "expires_at": time.time() + self.settings.retention_seconds,
                },
                "$unset": {"mp3_pending_id": ""},
            },
        )

    def _drop_video(self, job_id: ObjectId) -> None:
        """The MP3 exists: the video would only take space. Should this fail, the
        retention sweep removes it when the job expires."""
        try:
            gridfs_io.discard(self.db, gridfs_io.VIDEOS, job_id)
        except PyMongoError as exc:
            log.warning("could not remove the converted video", job_id=str(job_id),
                        error=repr(exc))  # fmt: skip

    def _fail(self, job: dict[str, Any], reason: str) -> Outcome:
        log.info("job failed", job_id=str(job["_id"]), reason=reason)
        failed = self._change(
            {"_id": job["_id"]},
            {
                "$set": {
                    "status": jobs.FAILED,
                    "error": reason,
                    "updated": jobs.now(),
                    "expires_at": time.time() + self.settings.retention_seconds,
                },
                "$unset": {"mp3_pending_id": ""},
            },
        )
        if failed is None:
            return Outcome()
        JOBS.labels("failed").inc()
        return self._finished(failed)

    def _progress(self, job_id: ObjectId, percent: int) -> None:
        self._change(
            {"_id": job_id, "status": jobs.PROCESSING, "progress": {"$lt": percent}},
            {"$set": {"progress": percent, "updated": jobs.now()}},
        )

    def _change(self, query: dict[str, Any], update: dict[str, Any]) -> dict[str, Any] | None:
        """Update the job record if ``query`` matches it, and announce the change to its
        watchers (best effort: they also read the record); returns the record after."""
        job = self.jobs.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        if job is not None and self.events is not None:
            notice = jobs.job_changed(job)
            sent = self.events.publish_event(
                self.settings.job_events_exchange, notice.job.id, notice
            )
            sent.add_done_callback(_log_unsent)
        return job

    def _finished(self, job: dict[str, Any]) -> Outcome:
        return Outcome(publish=[(self.settings.mp3_queue, jobs.job_finished(job), str(job["_id"]))])
