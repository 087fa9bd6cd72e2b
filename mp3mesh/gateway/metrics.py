"""What the gateway counts, beside the RPCs every server counts (mp3mesh/core/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter

UPLOAD_BYTES = Counter("mp3mesh_upload_bytes_total", "Video bytes received by Upload, kept or not.")
DOWNLOAD_BYTES = Counter("mp3mesh_download_bytes_total", "MP3 bytes sent by Download.")
# accepted: stored, job recorded; refused: an answer the client can act on (too large,
# empty, not as declared); failed: broken off (client gone, store down).
UPLOADS = Counter(
    "mp3mesh_uploads_total", "Uploads by outcome: accepted, refused, failed.", ("outcome",)
)
# A job's announcement to the converter: confirmed by the broker, or left to the outbox
# relay for a later try.
ANNOUNCEMENTS = Counter(
    "mp3mesh_job_announcements_total",
    "Job announcements published, by outcome: confirmed, failed (retried by the relay).",
    ("outcome",),
)
