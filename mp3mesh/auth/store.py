"""Users in PostgreSQL through psycopg2. Blocking calls; the servicer runs them in threads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool

MIGRATIONS = Path(__file__).with_name("migrations")


_USER = "SELECT id::text, email, password_hash, created_at, display_name FROM users"
_BY_EMAIL = f"{_USER} WHERE email = %s"
_BY_ID = f"{_USER} WHERE id = %s::uuid"


class EmailTaken(Exception):
    pass


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    created_at: dt.datetime
    display_name: str = ""


class UserStore:
    def __init__(self, database_url: str, max_connections: int = 8, **connect_kwargs: Any) -> None:
        # minconn 0: the store can start (and recover) while PostgreSQL is unreachable.
        self._pool = psycopg2.pool.ThreadedConnectionPool(
            0, max_connections, database_url, **connect_kwargs
        )

    def close(self) -> None:
        self._pool.closeall()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        conn = self._pool.getconn()
        try:
            with conn, conn.cursor() as cur:  # commits, or rolls back on error
                yield cur
        finally:
            # A connection the server dropped is closed, not pooled: the next call opens
            # a fresh one, so the service recovers by itself once PostgreSQL is back.
            self._pool.putconn(conn, close=bool(conn.closed))

    def create(self, email: str, password_hash: str, display_name: str = "") -> UserRecord:
        try:
            with self._cursor() as cur:
                cur.execute(
                    "INSERT INTO users (email, password_hash, display_name) VALUES (%s, %s, %s)"
                    " RETURNING id::text, email, password_hash, created_at, display_name",
                    (email, password_hash, display_name),
                )
                return UserRecord(*cur.fetchone())
        except psycopg2.errors.UniqueViolation as exc:
            raise EmailTaken(email) from exc

    def by_email(self, email: str) -> UserRecord | None:
        return self._one_user(_BY_EMAIL, email)

    def by_id(self, user_id: str) -> UserRecord | None:
        return self._one_user(_BY_ID, user_id)

    def _one_user(self, query: str, key: str) -> UserRecord | None:
        with self._cursor() as cur:
            cur.execute(query, (key,))
            row = cur.fetchone()
        return UserRecord(*row) if row else None

    def revoke(self, jti: str, expires: dt.datetime) -> None:
        """Refuse token ``jti`` from now on; revocations of expired tokens are dropped."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM revoked_tokens WHERE expires_at < now()")
            cur.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (%s, %s)"
                " ON CONFLICT (jti) DO NOTHING",
                (jti, expires),
            )

    def live_revocations(self) -> list[tuple[str, dt.datetime]]:
        """(jti, expiry) of every revoked token not yet expired, soonest to expire first."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > now()"
                " ORDER BY expires_at"
            )
            return [(jti, expires) for jti, expires in cur.fetchall()]

    def live_user_revocations(self) -> list[tuple[str, dt.datetime, dt.datetime]]:
        """(user id, tokens issued before, expiry) of every live revocation of a user's
        tokens, soonest to expire first."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT user_id, issued_before, expires_at FROM revoked_users"
                " WHERE expires_at > now() ORDER BY expires_at"
            )
            return [(user_id, before, expires) for user_id, before, expires in cur.fetchall()]

    @staticmethod
    def _revoke_user(
        cur: psycopg2.extensions.cursor,
        user_id: str,
        issued_before: dt.datetime,
        expires: dt.datetime,
    ) -> None:
        cur.execute("DELETE FROM revoked_users WHERE expires_at < now()")
        cur.execute(
            "INSERT INTO revoked_users (user_id, issued_before, expires_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET"
            " issued_before = GREATEST(revoked_users.issued_before, EXCLUDED.issued_before),"
            " expires_at = GREATEST(revoked_users.expires_at, EXCLUDED.expires_at)",
            (user_id, issued_before, expires),
        )

    def change_password(
        self, user_id: str, password_hash: str, issued_before: dt.datetime, expires: dt.datetime
    ) -> None:
        """The new password, and the user's tokens issued before ``issued_before``
        revoked (until ``expires``), in one transaction."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s::uuid", (password_hash, user_id)
            )
            self._revoke_user(cur, user_id, issued_before, expires)

    def delete_user(self, user_id: str, issued_before: dt.datetime, expires: dt.datetime) -> None:
        """The account gone, and its tokens revoked (until ``expires``), in one transaction."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s::uuid", (user_id,))
            self._revoke_user(cur, user_id, issued_before, expires)

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s::uuid", (password_hash, user_id)
            )
