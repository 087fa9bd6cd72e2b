"""ffmpeg slots: as many ffmpegs at once as the converter has cores, while more jobs than
that are in hand.

A job's time is more than ffmpeg's: its video is copied out of GridFS first and its MP3
into GridFS after, and those copies use the store and the network, not this process's
cores. With one job per core, a core sits idle during each copy. So the converter takes
more jobs than it runs ffmpegs (each consumer holds one job, ``ConverterSettings.
consumers``), and a job waits here for a free slot only for ffmpeg itself: the next
job's video is already on disk when a slot frees, and a finished job's MP3 is stored
while another job's ffmpeg runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# How often a job waiting for a slot looks whether it should stop waiting (the converter
# is stopping, or its job was taken over).
WAIT_POLL_SECONDS = 0.2


class FfmpegSlots:
    """A counting semaphore whose waiters can be called off."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._free = threading.BoundedSemaphore(count)

    @contextmanager
    def slot(self, check: Callable[[], None]) -> Iterator[None]:
        """Hold a slot for the with-block. While waiting, ``check`` runs every
        WAIT_POLL_SECONDS and may raise to give up the wait (nothing is held then)."""
        check()
        while not self._free.acquire(timeout=WAIT_POLL_SECONDS):
            check()
        try:
            yield
        finally:
            self._free.release()
