from __future__ import annotations

from meshcore.settings import MeshSettings


class ConverterSettings(MeshSettings):
    # Where the video and MP3 sit while ffmpeg works; removed after each job.
    work_dir: str | None = None
    mp3_bitrate_kbps: int = 192
    mp3_sample_rate: int = 44100
    # A job is tried at most this often: an unexpected error is retried once (the
    # consumer requeues once), and a job that keeps crashing the process is given up.
    max_attempts: int = 2
