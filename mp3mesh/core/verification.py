"""A token checked where it arrives: signature and claims against auth's published keys
(mp3mesh/core/tokens.py), then the revocation set (mp3mesh/core/revocations.py). No call to auth
per request: the gateway and the shim fetch the JWKS once and keep it, so they go on
accepting the tokens they can check while auth is down.

The JWKS is fetched again every ``refresh`` seconds (auth's Cache-Control max-age), and
at once when a token names a key not held (a new signing key), at most once per
``min_interval`` seconds so that made-up ``kid``s cannot turn into a flood of fetches.
A fetch that fails keeps the keys held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import structlog

from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core import tls
from mp3mesh.core.channels import CHANNEL_OPTIONS
from mp3mesh.core.revocations import RevocationFeed, RevocationSet, Snapshot
from mp3mesh.core.settings import AuthVerifierSettings
from mp3mesh.core.tokens import (
    AUDIENCE,
    EXPIRED,
    ISSUER,
    Claims,
    InvalidToken,
    TokenVerifier,
    UnknownKey,
    keys_from_jwks,
)

log = structlog.get_logger()

# What a caller is told when its token cannot be checked at all (auth was never reached
# for the keys, or the revocations' snapshot is not in yet). Envoy says the same when it
# cannot fetch the JWKS (envoy/render.py JWKS_UNAVAILABLE).
UNAVAILABLE = "cannot check your token right now: auth service unavailable"
REVOKED = "token was revoked (logged out); log in"
USER_REVOKED = "token was revoked (the account's password changed, or it was deleted); log in"

JWK_FIELDS = ("kty", "crv", "x", "kid", "alg", "use")

FetchJwks = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]


class CannotVerify(Exception):
    """Nothing to check the token against yet; the caller should answer UNAVAILABLE."""


class RemoteKeys:
    """auth's public keys, fetched with ``fetch`` (AuthService.GetJwks) and kept."""

    def __init__(
        self,
        fetch: FetchJwks,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        refresh: float = 300.0,
        min_interval: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self.issuer, self.audience = issuer, audience
        self.refresh, self.min_interval = refresh, min_interval
        self._verifier: TokenVerifier | None = None
        self._tried = float("-inf")  # time.monotonic() of the last fetch, failed or not
        self._fetched = float("-inf")  # of the last one that worked
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[bool] | None = None

    def _refreshed(self, _: asyncio.Task[bool]) -> None:
        self._refreshing = None

    async def fetch(self) -> bool:
        """Fetch now (unless another caller just did); a failure keeps the keys held.
        False if the keys could not be fetched."""
        tried = self._tried
        async with self._lock:
            if self._tried != tried:  # fetched while this caller waited for the lock
                return self._fetched >= self._tried
            self._tried = time.monotonic()
            try:
                jwks = await self._fetch()
            except Exception as exc:
                log.warning("cannot fetch auth's JWKS; keeping the keys held", error=repr(exc))
                return False
            self._verifier = TokenVerifier(
                keys_from_jwks(jwks), issuer=self.issuer, audience=self.audience
            )
            self._fetched = time.monotonic()
            return True

    async def verify(self, token: str) -> Claims:
        """The token's claims; InvalidToken, or CannotVerify with no keys at all."""
        due = time.monotonic() - self._tried >= self.min_interval
        if self._verifier is None and due:
            await self.fetch()
        elif due and time.monotonic() - self._fetched > self.refresh and self._refreshing is None:
            # Refreshed in the background: no call waits on it (auth may be down).
            self._refreshing = asyncio.create_task(self.fetch())
            self._refreshing.add_done_callback(self._refreshed)
        if self._verifier is None:
            raise CannotVerify(UNAVAILABLE)
        try:
            return self._verifier.verify(token)
        except UnknownKey:
            if time.monotonic() - self._tried < self.min_interval:
                raise
            if not await self.fetch():  # a new key, maybe: it cannot be known now
                raise CannotVerify(UNAVAILABLE) from None
            assert self._verifier is not None
            return self._verifier.verify(token)


class LocalVerifier:
    """Signature, claims and revocation, all from memory."""

    def __init__(self, keys: RemoteKeys | TokenVerifier, revocations: RevocationSet) -> None:
        self.keys = keys
        self.revocations = revocations

    async def verify(self, token: str, *, revocations: bool = True) -> Claims:
        """The token's claims; InvalidToken saying why it is refused, or CannotVerify.
        ``revocations=False``: signature and claims only (Logout: logging out twice is no
        error)."""
        if isinstance(self.keys, TokenVerifier):
            claims = self.keys.verify(token)
        else:
            claims = await self.keys.verify(token)
        if not revocations:
            return claims
        if not self.revocations.loaded:
            raise CannotVerify(UNAVAILABLE)
        if (refused := self.refusal(claims)) is not None:
            raise InvalidToken(refused)
        return claims

    def refusal(self, claims: Claims) -> str | None:
        """Why a token whose claims were checked is refused now (revoked, or expired
        since: a stream outliving its token), or None while it is good."""
        if self.revocations.revoked(claims.token_id):
            return REVOKED
        if self.revocations.user_revoked(claims.user_id, claims.issued_at):
            return USER_REVOKED
        if claims.expires.timestamp() <= time.time():
            return EXPIRED
        return None


def jwks_from(auth: auth_pb2_grpc.AuthServiceStub, timeout: float) -> FetchJwks:
    """Fetches the JWKS with AuthService.GetJwks (on a grpc.aio channel)."""

    async def fetch() -> list[dict[str, str]]:
        # wait_for_ready: a channel backing off after auth restarted (a rotation) gets
        # the deadline to reconnect instead of failing at once.
        reply = await auth.GetJwks(auth_pb2.GetJwksRequest(), timeout=timeout, wait_for_ready=True)
        return [{field: getattr(key, field) for field in JWK_FIELDS} for key in reply.keys]

    return fetch


def revocations_from(
    address: str, credentials: grpc.ChannelCredentials | None, timeout: float
) -> Snapshot:
    """Reads the live revocations with AuthService.ListRevocations, on a blocking channel
    of its own (the feed's thread calls it, outside any event loop)."""

    def snapshot() -> list[auth_pb2.Revocation]:
        if credentials is None:
            channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
        with channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).ListRevocations(
                auth_pb2.ListRevocationsRequest(), timeout=timeout, wait_for_ready=True
            )
        return list(reply.revocations)

    return snapshot


async def verifier_from_auth(
    settings: AuthVerifierSettings, auth_channel: grpc.aio.Channel
) -> tuple[LocalVerifier, RevocationFeed]:
    """What the gateway and the shim check tokens with: auth's keys fetched over gRPC,
    the revocations' snapshot too, then kept current from the broker. Both are fetched
    before this returns (if auth answers); close the feed on the way out."""
    timeout = settings.auth_timeout_seconds
    keys = RemoteKeys(
        jwks_from(auth_pb2_grpc.AuthServiceStub(auth_channel), timeout),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    feed = RevocationFeed(
        settings.amqp_url,
        settings.revocations_exchange,
        revocations_from(settings.auth_address, tls.channel_credentials(settings), timeout),
    )
    await asyncio.gather(keys.fetch(), feed.started())
    return LocalVerifier(keys, feed.revocations), feed
