"""Which jobs were already mailed, in PostgreSQL (psycopg2)."""

from __future__ import annotations

from pathlib import Path

import psycopg2

MIGRATIONS = Path(__file__).with_name("migrations")


class SentLedger:
    """Used from one thread at a time (the consumer's handler thread)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn = psycopg2.connect(database_url)

    def close(self) -> None:
        self._conn.close()

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn.closed:
            self._conn = psycopg2.connect(self.database_url)
        return self._conn

    def already_sent(self, job_id: str) -> bool:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM sent_notifications WHERE job_id = %s", (job_id,))
            return cur.fetchone() is not None

    def record(self, job_id: str, recipient: str, status: str) -> None:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO sent_notifications (job_id, recipient, status) VALUES (%s, %s, %s)"
                " ON CONFLICT (job_id) DO NOTHING",
                (job_id, recipient, status),
            )
