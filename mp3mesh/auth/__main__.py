"""Run the auth service: ``python -m mp3mesh.auth``."""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import partial

import structlog
from argon2 import PasswordHasher

from mp3mesh.auth.servicer import AuthServicer, live_revocations
from mp3mesh.auth.settings import AuthSettings
from mp3mesh.auth.store import MIGRATIONS, UserStore
from mp3mesh.auth.throttle import AddressLimits, HashBound, LoginThrottle
from mp3mesh.auth.tokens import (
    KeyFileError,
    TokenIssuer,
    development_key,
    load_private_key,
    load_public_key,
)
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core import logs, metrics, tracing
from mp3mesh.core.amqp import ThreadedPublisher
from mp3mesh.core.grpc_server import Service, serve
from mp3mesh.core.migrations import migrate
from mp3mesh.core.revocations import TOKEN_ROUTING_KEY, USER_ROUTING_KEY, RevocationFeed
from mp3mesh.core.verification import LocalVerifier


def _token_issuer(settings: AuthSettings, log: structlog.stdlib.BoundLogger) -> TokenIssuer:
    """The issuer with the configured keys; exits saying which key file is wrong."""
    try:
        if settings.jwt_signing_key_file is None:
            path = settings.development_key_file
            log.warning("JWT_SIGNING_KEY_FILE not set: using a development key", path=str(path))
            signing_key = development_key(path)
        else:
            signing_key = load_private_key(settings.jwt_signing_key_file)
        previous = [load_public_key(path) for path in settings.jwt_previous_key_files]
    except KeyFileError as exc:
        raise SystemExit(f"auth: {exc}") from exc
    return TokenIssuer(
        signing_key,
        settings.jwt_issuer,
        settings.jwt_audience,
        dt.timedelta(seconds=settings.token_ttl_seconds),
        previous,
    )


# How long Logout waits for the broker to take its revocation.
PUBLISH_TIMEOUT_SECONDS = 5.0


def _revocation_publisher(
    settings: AuthSettings, log: structlog.stdlib.BoundLogger
) -> ThreadedPublisher:
    """Connected, or connecting in its thread: auth serves logins without the broker,
    and a Logout meanwhile answers UNAVAILABLE (REVOCATION_NOT_SENT)."""
    publisher = ThreadedPublisher(settings.amqp_url, [], topics=[settings.revocations_exchange])
    try:
        publisher.start(timeout=10)
    except RuntimeError:
        log.warning("broker not reachable yet: revocations wait for it")
    return publisher


def main() -> None:
    settings = AuthSettings()
    log = logs.configure("auth", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("auth", settings)
    tokens = _token_issuer(settings, log)
    migrate(settings.database_url, MIGRATIONS)
    store = UserStore(settings.database_url, **settings.database_timeouts)
    hashing = HashBound(settings.hash_concurrency, settings.hash_queue)
    # auth keeps the revocation set too (other replicas' logouts reach it as notices),
    # and reads its snapshot from its own table.
    feed = RevocationFeed(
        settings.amqp_url,
        settings.revocations_exchange,
        partial(live_revocations, store),
    )
    feed.start()
    publisher = _revocation_publisher(settings, log)

    async def publish_revocation(message: auth_pb2.Revocation) -> None:
        key = USER_ROUTING_KEY if message.user_id else TOKEN_ROUTING_KEY
        future = publisher.publish_event(settings.revocations_exchange, key, message)
        await asyncio.wait_for(asyncio.wrap_future(future), PUBLISH_TIMEOUT_SECONDS)

    register_hashing = HashBound(settings.register_hash_concurrency, settings.register_hash_queue)
    servicer = AuthServicer(
        store,
        tokens,
        PasswordHasher(),
        LoginThrottle(
            settings.login_failures_per_email,
            settings.login_failures_per_address,
            settings.login_failures_per_account,
            settings.login_account_slowdown_seconds,
        ),
        hashing,
        LocalVerifier(tokens.verifier, feed.revocations),
        publish_revocation,
        AddressLimits(
            settings.login_requests_per_minute, settings.registrations_per_address_per_hour
        ),
        register_hashing,
        settings.tls_trust_domain,
    )
    service = Service(
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        servicer,
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
    )

    async def close() -> None:
        await asyncio.to_thread(feed.close)
        await asyncio.to_thread(publisher.close)
        store.close()
        hashing.close()
        register_hashing.close()

    asyncio.run(
        serve(
            [service],
            settings.auth_listen,
            settings,
            on_stop=close,
        )
    )


if __name__ == "__main__":
    main()
