"""Run the auth service: ``python -m auth``."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

from argon2 import PasswordHasher

from auth.servicer import AuthServicer
from auth.settings import AuthSettings
from auth.store import MIGRATIONS, UserStore
from auth.throttle import HashBound, LoginThrottle
from auth.tokens import TokenIssuer
from meshcore import logs, metrics, tls, tracing
from meshcore.grpc_server import Service, serve
from meshcore.migrations import migrate
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc


def main() -> None:
    settings = AuthSettings()
    log = logs.configure("auth", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("auth", settings)
    if settings.jwt_secret is None:
        log.warning("JWT_SECRET not set: using a random key; tokens end when this process does")
        secret = secrets.token_urlsafe(48)
    else:
        secret = settings.jwt_secret.get_secret_value()

    migrate(settings.database_url, MIGRATIONS)
    store = UserStore(settings.database_url, **settings.database_timeouts)
    hashing = HashBound(settings.hash_concurrency, settings.hash_queue)
    servicer = AuthServicer(
        store,
        TokenIssuer(
            secret,
            settings.jwt_issuer,
            settings.jwt_audience,
            dt.timedelta(seconds=settings.token_ttl_seconds),
            [key.get_secret_value() for key in settings.jwt_previous_secrets],
        ),
        PasswordHasher(),
        LoginThrottle(settings.login_failures_per_email, settings.login_failures_per_address),
        hashing,
    )
    service = Service(
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        servicer,
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
    )

    async def close() -> None:
        store.close()
        hashing.close()

    asyncio.run(
        serve(
            [service],
            settings.auth_listen,
            on_stop=close,
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            credentials=tls.server_credentials(settings),
            reflection_on=settings.reflection,
        )
    )


if __name__ == "__main__":
    main()
