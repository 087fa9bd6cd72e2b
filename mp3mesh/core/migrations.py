"""Schema migrations at start-up, with yoyo: idempotent, and safe when several replicas
start at once (yoyo takes a lock).

The services migrate when they start; a deployment can also migrate first, on its own
(a Kubernetes init container or Job), so that a broken migration shows as a failed
step instead of a crash-looping service:

    python -m mp3mesh.core.migrations auth notification

applies each named service's ``migrations/`` folder (in ``mp3mesh.<service>``) to ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import psycopg2
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from yoyo import get_backend, read_migrations

from mp3mesh.core.settings import DatabaseSettings


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


def migrations_of(service: str) -> Path:
    """The ``migrations/`` folder shipped inside the service's package (package data).

    ``mp3mesh.auth`` is a namespace package (the generated ``mp3mesh.auth.v1`` shares it), so
    the folder is looked for in each of the package's locations, not beside a module."""
    spec = importlib.util.find_spec(f"mp3mesh.{service}")
    locations = (spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "migrations"
        if folder.is_dir():
            return folder
    raise SystemExit(f"no service {service!r} with a migrations/ folder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply the services' schema migrations.")
    parser.add_argument("services", nargs="+", help="e.g. auth notification")
    args = parser.parse_args(argv)
    database_url = DatabaseSettings().database_url
    for service in args.services:
        migrate(database_url, migrations_of(service))
        print(f"{service}: migrations applied", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
