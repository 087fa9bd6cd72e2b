"""Schema migrations at start-up, with yoyo: idempotent, and safe when several replicas
start at once (yoyo takes a lock).

The services migrate when they start; a deployment can also migrate first, on its own
(a Kubernetes init container or Job), so that a broken migration shows as a failed
step instead of a crash-looping service:

    python -m meshcore.migrations auth notification

applies each named package's ``migrations/`` folder to ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import psycopg2
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from yoyo import get_backend, read_migrations

from meshcore.settings import DatabaseSettings


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


def migrations_of(package: str) -> Path:
    """The ``migrations/`` folder shipped inside ``package`` (package data)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"no package {package!r}")
    folder = Path(spec.origin).with_name("migrations")
    if not folder.is_dir():
        raise SystemExit(f"package {package!r} has no migrations/ folder")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply the services' schema migrations.")
    parser.add_argument("packages", nargs="+", help="e.g. auth notification")
    args = parser.parse_args(argv)
    database_url = DatabaseSettings().database_url
    for package in args.packages:
        migrate(database_url, migrations_of(package))
        print(f"{package}: migrations applied", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
