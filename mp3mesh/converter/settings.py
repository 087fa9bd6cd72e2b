from __future__ import annotations

import os

from pydantic import Field

from mp3mesh.core.settings import BrokerSettings, MongoSettings, RetentionSettings


class ConverterSettings(MongoSettings, BrokerSettings, RetentionSettings):
    # How many videos are converted at once (one consumer thread with its own broker
    # connection, and one ffmpeg, each). 0: one per CPU this process may run on. In
    # Kubernetes it is the container's CPU limit (k8s/base/converter.yaml).
    concurrent_conversions: int = 0
    # Where the video and MP3 sit while ffmpeg works; removed after each job.
    work_dir: str | None = None
    # The MP3 ffmpeg writes: bitrate (kb/s) and sample rate (Hz).
    mp3_bitrate_kbps: int = 192
    mp3_sample_rate: int = 44100
    # A job is tried at most this often: an unexpected error is retried once (the
    # consumer requeues once), and a job that keeps crashing the process is given up.
    max_attempts: int = 2
    # Keep the uploaded video after a successful conversion (until the job expires).
    keep_source_video: bool = False
    # A converter holds the job it works on for this long, renewed every third of it; a
    # converter that dies lets go of it this long after its last renewal.
    lease_seconds: float = 60.0
    # ffmpeg gets base + per_media_second x (the media's duration) seconds, then it is
    # stopped and the job retried (MP3 encoding runs at ~300x real time on one core here).
    ffmpeg_timeout_base_seconds: float = 60.0
    ffmpeg_timeout_per_media_second: float = 0.5
    # A job's media may last this long at most: a longer video fails at once, and no
    # video writes more MP3 than this (or than its declared duration) at the bitrate,
    # whatever its header claims (mp3mesh/converter/transcode.py OutputBound).
    max_media_seconds: float = Field(6 * 3600.0, gt=0)

    @property
    def conversions(self) -> int:
        """How many conversions run at once: ``concurrent_conversions``, or the CPUs."""
        return self.concurrent_conversions or len(os.sched_getaffinity(0))
