"""Schema migrations at start-up, with yoyo: idempotent, and safe when several replicas
start at once (yoyo takes a lock)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from yoyo import get_backend, read_migrations


@retry(
    # Waits for a database that is still starting; a broken migration fails at once.
    retry=retry_if_exception_type(psycopg2.OperationalError),
    wait=wait_exponential(max=5),
    stop=stop_after_delay(60),
    reraise=True,
)
def migrate(database_url: str, folder: Path) -> None:
    backend = get_backend(database_url)
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(folder))))
