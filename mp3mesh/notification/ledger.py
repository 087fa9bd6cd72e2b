"""Which jobs were mailed, in PostgreSQL (psycopg2): claimed before sending, recorded after.

A sender first claims the job's row for ``lease`` seconds, under a token of its own; only
the holder of an unexpired claim sends, only it can release the claim, and it records the
mail as sent once the SMTP server accepted it. Two deliveries of one JobFinished (a
redelivery, two replicas) therefore never both send.
What stays at-least-once: a sender that dies after the SMTP server accepted the mail and
before recording it. Its claim expires, and the next try sends again, with the same
Message-ID (derived from the job), which mail clients and Gmail collapse into one mail.
"""

from __future__ import annotations

import enum
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

MIGRATIONS = Path(__file__).with_name("migrations")


class Claim(enum.Enum):
    CLAIMED = "claimed"  # this sender holds the job now: send, then record
    DONE = "done"  # mailed (or refused for good) already: nothing to do
    HELD = "held"  # another sender holds an unexpired claim: try again later


class SentLedger:
    """Used from one thread at a time (the consumer's handler thread)."""

    def __init__(self, database_url: str, **connect_kwargs: Any) -> None:
        self.database_url = database_url
        self.connect_kwargs = connect_kwargs
        self._conn = psycopg2.connect(database_url, **connect_kwargs)
        # The token of each claim this sender holds, by job: only it can release one.
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._conn.close()

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn.closed:
            self._conn = psycopg2.connect(self.database_url, **self.connect_kwargs)
        return self._conn

    def claim(self, job_id: str, recipient: str, status: str, lease: float) -> Claim:
        token = uuid.uuid4().hex
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO sent_notifications"
                "   (job_id, recipient, status, claimed_until, claim_token)"
                " VALUES (%s, %s, %s, now() + make_interval(secs => %s), %s)"
                " ON CONFLICT (job_id) DO UPDATE SET claimed_until = EXCLUDED.claimed_until,"
                "   recipient = EXCLUDED.recipient, status = EXCLUDED.status,"
                "   claim_token = EXCLUDED.claim_token"
                " WHERE sent_notifications.sent_at IS NULL"
                "   AND sent_notifications.claimed_until < now()"
                " RETURNING job_id",
                (job_id, recipient, status, lease, token),
            )
            if cur.fetchone() is not None:
                self._tokens[job_id] = token
                return Claim.CLAIMED
            cur.execute(
                "SELECT sent_at IS NOT NULL FROM sent_notifications WHERE job_id = %s", (job_id,)
            )
            row = cur.fetchone()
            return Claim.DONE if row and row[0] else Claim.HELD

    def release(self, job_id: str) -> None:
        """The send failed: let the next try claim it at once, if this sender still holds
        the claim (once it expired, another sender may hold a claim of its own)."""
        token = self._tokens.pop(job_id, None)
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE sent_notifications SET claimed_until = now()"
                " WHERE job_id = %s AND sent_at IS NULL AND claim_token = %s",
                (job_id, token),
            )

    def record(self, job_id: str, refused: str | None = None) -> None:
        """The SMTP server accepted the mail (or refused it for good, with its reply),
        whoever holds the claim now: the mail is out."""
        self._tokens.pop(job_id, None)
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE sent_notifications SET sent_at = now(), claimed_until = NULL, refused = %s"
                " WHERE job_id = %s",
                (refused, job_id),
            )

    def forget_older_than(self, seconds: float) -> int:
        """Delete the rows of mails sent (or claims abandoned) over ``seconds`` ago: by then
        the job record is gone too, so no redelivery of its message can still be due."""
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "DELETE FROM sent_notifications"
                " WHERE COALESCE(sent_at, claimed_until) < now() - make_interval(secs => %s)",
                (seconds,),
            )
            return int(cur.rowcount)

    def already_sent(self, job_id: str) -> bool:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM sent_notifications WHERE job_id = %s AND sent_at IS NOT NULL",
                (job_id,),
            )
            return cur.fetchone() is not None
