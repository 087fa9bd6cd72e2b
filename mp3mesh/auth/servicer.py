"""AuthService: Register, Login, Logout, ChangePassword, DeleteAccount, ValidateToken,
WhoAmI, GetJwks, ListRevocations."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

import grpc
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from mp3mesh.auth.store import EmailTaken, UserRecord, UserStore
from mp3mesh.auth.throttle import AddressLimits, HashBound, LoginThrottle, Throttled, client_address
from mp3mesh.auth.tokens import TokenIssuer
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc
from mp3mesh.core.credentials import basic_credentials, bearer_token
from mp3mesh.core.grpc_server import abort, require_credentials
from mp3mesh.core.identity import from_edge
from mp3mesh.core.limits import (
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_TOKEN_LENGTH,
    too_long,
)
from mp3mesh.core.revocations import revocation_message, user_revocation_message
from mp3mesh.core.timestamps import timestamp
from mp3mesh.core.tokens import MISSING, Claims, InvalidToken
from mp3mesh.core.verification import CannotVerify, LocalVerifier

log = structlog.get_logger()

MIN_PASSWORD_LENGTH = 8
BAD_CREDENTIALS = "email or password is incorrect"
# How long an edge or a client may keep the JWKS: a new signing key is published this
# long before it signs (list it in JWT_PREVIOUS_KEY_FILES first, see README: rotation),
# and a verifier that meets an unknown kid asks again anyway.
JWKS_CACHE_CONTROL = "public, max-age=300"
ACCOUNT_GONE = "the account behind this token no longer exists"
WRONG_PASSWORD = "password is incorrect"  # noqa: S105 - a message, not a password
# How often a revocation the broker did not take is tried again (in the background).
REPUBLISH_SECONDS = 1.0

# Publishes a revocation to every verifier; fails (raises) if the broker did not take it.
PublishRevocation = Callable[[auth_pb2.Revocation], Awaitable[None]]


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def live_revocations(store: UserStore) -> list[auth_pb2.Revocation]:
    """Every live revocation in the store, as the messages that push them: the snapshot."""
    tokens = [
        revocation_message(jti, expires.timestamp()) for jti, expires in store.live_revocations()
    ]
    users = [
        user_revocation_message(user_id, before.timestamp(), expires.timestamp())
        for user_id, before, expires in store.live_user_revocations()
    ]
    return [*tokens, *users]


def _user_proto(user: UserRecord) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id,
        email=user.email,
        create_time=timestamp(user.created_at),
        display_name=user.display_name,
    )


def _registration_email(request: auth_pb2.RegisterRequest) -> str:
    """The new account's email, normalized: ``email``, or the seed-style ``username``.

    Raises ValueError with what to send instead.
    """
    email, username = request.email.strip(), request.username.strip()
    if email and username and email.lower() != username.lower():
        raise ValueError("email and username differ: send the email address in one of them")
    try:
        return validate_email(email or username, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        if username and not email:
            raise ValueError(
                f"username must be an email address ({exc}): accounts log in and get their"
                ' mail by email, so send {"username": "you@example.com", "password": ...}'
            ) from exc
        raise ValueError(f"email is not valid: {exc}") from exc


async def _check_new_password(password: str, context: grpc.aio.ServicerContext) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
        )


async def _refuse_throttled(context: grpc.aio.ServicerContext, exc: Throttled) -> NoReturn:
    """RESOURCE_EXHAUSTED (HTTP 429) with the wait in words and in ``retry-after``."""
    await context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        exc.message,
        trailing_metadata=(("retry-after", str(exc.retry_after)),),
    )
    raise AssertionError("context.abort returned")


async def _refuse_long(context: grpc.aio.ServicerContext, *fields: tuple[str, str, int]) -> None:
    """INVALID_ARGUMENT naming the first field over its length."""
    for name, value, limit in fields:
        if message := too_long(name, value, limit):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, message)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        store: UserStore,
        tokens: TokenIssuer,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        hashing: HashBound,
        verifier: LocalVerifier,
        publish_revocation: PublishRevocation,
        address_limits: AddressLimits,
        register_hashing: HashBound,
        trust_domain: str = "mp3mesh",
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.verifier = verifier
        self.publish_revocation = publish_revocation
        self._republishing: set[asyncio.Task[None]] = set()
        self.hasher = hasher
        self.throttle = throttle
        self.hashing = hashing
        self.address_limits = address_limits
        self.register_hashing = register_hashing
        self.trust_domain = trust_domain
        # Verified against when the email is unknown, so both failures take as long.
        self._dummy_hash = hasher.hash("not-a-real-password")

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        await _refuse_long(
            context,
            ("email", request.email, MAX_EMAIL_LENGTH),
            ("username", request.username, MAX_EMAIL_LENGTH),
            ("password", request.password, MAX_PASSWORD_LENGTH),
            ("name", request.name, MAX_DISPLAY_NAME_LENGTH),
        )
        try:
            email = _registration_email(request)
        except ValueError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await _check_new_password(request.password, context)
        name = request.name.strip()
        if len(name) > MAX_DISPLAY_NAME_LENGTH or not name.isprintable():
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"name must be at most {MAX_DISPLAY_NAME_LENGTH} printable characters",
            )
        try:
            self.address_limits.admit_registration(self._address(context))
            password_hash = await self.register_hashing.run(
                partial(self.hasher.hash, request.password)
            )
        except Throttled as exc:
            log.info("registration throttled", reason=exc.message)
            await _refuse_throttled(context, exc)
        try:
            user = await asyncio.to_thread(self.store.create, email, password_hash, name)
            log.info("registered", user_id=user.id)
        except EmailTaken:
            log.info("registration for an existing account: answered as for a new one")
        # The same answer either way, so Register cannot tell who has an account.
        return auth_pb2.RegisterResponse(user=auth_pb2.User(email=email, display_name=name))

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        address = self._address(context)
        try:
            self.address_limits.admit_login(address)
        except Throttled as exc:
            log.info("login throttled", reason=exc.message)
            await _refuse_throttled(context, exc)
        email, password = request.email, request.password
        if not email and not password:
            email, password = await require_credentials(
                basic_credentials(context.invocation_metadata()),
                context,
                "send email and password, or HTTP Basic credentials (curl -u email:password)",
            )
        await _refuse_long(
            context,
            ("email", email, MAX_EMAIL_LENGTH),
            ("password", password, MAX_PASSWORD_LENGTH),
        )
        email = email.strip().lower()
        try:
            self.throttle.begin(email, address)
        except Throttled as exc:
            log.info("login throttled", reason=exc.message)
            await _refuse_throttled(context, exc)
        try:
            user = await asyncio.to_thread(self.store.by_email, email)
            matches = await self.hashing.run(partial(self._password_matches, user, password))
        except Throttled as exc:
            self.throttle.abandoned(email, address)
            log.info("login throttled", reason=exc.message)
            await _refuse_throttled(context, exc)
        except BaseException:
            self.throttle.abandoned(email, address)
            raise
        if user is None or not matches:
            self.throttle.failed(email, address)
            log.info("login refused")
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, BAD_CREDENTIALS)
        self.throttle.succeeded(email, address)
        token, expires = self.tokens.issue(user.id, user.email)
        log.info("logged in", user_id=user.id)
        return auth_pb2.LoginResponse(
            token=token,
            token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
            expire_time=timestamp(expires),
        )

    def _address(self, context: grpc.aio.ServicerContext) -> str:
        """The client address the per-address limits count under: the one an edge
        established, believed from edges only (by certificate, over TLS)."""
        return client_address(
            context.invocation_metadata(),
            context.peer(),
            from_edge=from_edge(context, self.trust_domain),
        )

    def _password_matches(self, user: UserRecord | None, password: str) -> bool:
        try:
            self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if user is None:
            return False
        if self.hasher.check_needs_rehash(user.password_hash):
            self.store.set_password_hash(user.id, self.hasher.hash(password))
        return True

    async def _verified(self, token: str, context: grpc.aio.ServicerContext) -> Claims:
        """The token's claims, or UNAUTHENTICATED: invalid or revoked. From memory (the
        signing keys and the revocation set): no database read."""
        try:
            return await self.verifier.verify(token)
        except InvalidToken as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except CannotVerify as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))

    async def _caller_token(self, context: grpc.aio.ServicerContext) -> str:
        return await require_credentials(
            bearer_token(context.invocation_metadata()),
            context,
            MISSING,
        )

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        try:
            claims = self.tokens.verifier.verify(await self._caller_token(context))
        except InvalidToken as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        # Recorded first (the snapshot verifiers start from), then pushed to them all.
        await asyncio.to_thread(self.store.revoke, claims.token_id, claims.expires)
        expires = claims.expires.timestamp()
        self.verifier.revocations.add(claims.token_id, expires)
        await self._push(revocation_message(claims.token_id, expires))
        log.info("logged out", user_id=claims.user_id)
        return auth_pb2.LogoutResponse()

    async def _push(self, message: auth_pb2.Revocation) -> None:
        """Publish the revocation to every verifier; returns once the broker has it, so
        the caller's answer comes after. If the broker does not take it, the call still
        succeeds (the revocation is recorded: a verifier that lost its subscription reads
        it with the next snapshot) and publishing is retried in the background until the
        revocation would expire anyway."""
        try:
            await self.publish_revocation(message)
        except Exception as exc:
            log.error("revocation not published; retrying", error=repr(exc))
            task = asyncio.create_task(self._republish(message))
            self._republishing.add(task)
            task.add_done_callback(self._republishing.discard)

    async def _republish(self, message: auth_pb2.Revocation) -> None:
        while time.time() < message.expire_time.ToNanoseconds() / 1e9:
            await asyncio.sleep(REPUBLISH_SECONDS)
            try:
                await self.publish_revocation(message)
            except Exception as exc:
                log.warning("revocation still not published", error=repr(exc))
            else:
                log.info("revocation published after a retry")
                return

    async def _with_password(
        self, claims: Claims, password: str, context: grpc.aio.ServicerContext
    ) -> UserRecord:
        """The caller's account once ``password`` is its password: counted like a login
        (a stolen token cannot guess it), PERMISSION_DENIED otherwise."""
        address = self._address(context)
        try:
            self.throttle.begin(claims.email, address)
        except Throttled as exc:
            await _refuse_throttled(context, exc)
        try:
            user = await asyncio.to_thread(self.store.by_id, claims.user_id)
            matches = await self.hashing.run(partial(self._password_matches, user, password))
        except Throttled as exc:
            self.throttle.abandoned(claims.email, address)
            await _refuse_throttled(context, exc)
        except BaseException:
            self.throttle.abandoned(claims.email, address)
            raise
        if user is None:
            self.throttle.abandoned(claims.email, address)
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, ACCOUNT_GONE)
        if not matches:
            self.throttle.failed(claims.email, address)
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, WRONG_PASSWORD)
        self.throttle.succeeded(claims.email, address)
        return user

    def _user_revocation(self) -> tuple[float, float]:
        """(issued before, expiry) of a revocation of ``user_id``'s tokens made now: the
        next whole second (tokens' ``iat`` is in whole seconds, so every token issued
        until now is earlier), kept as long as a token issued until then can live."""
        issued_before = float(math.ceil(time.time()))
        return issued_before, issued_before + self.tokens.ttl.total_seconds()

    async def _revoke_user(self, user_id: str, issued_before: float, expires: float) -> None:
        self.verifier.revocations.add_user(user_id, issued_before, expires)
        await self._push(user_revocation_message(user_id, issued_before, expires))

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ChangePasswordResponse:
        claims = await self._verified(await self._caller_token(context), context)
        await _check_new_password(request.new_password, context)
        user = await self._with_password(claims, request.current_password, context)
        try:
            new_hash = await self.hashing.run(partial(self.hasher.hash, request.new_password))
        except Throttled as exc:
            await _refuse_throttled(context, exc)
        issued_before, expires = self._user_revocation()
        await asyncio.to_thread(
            self.store.change_password, user.id, new_hash, _utc(issued_before), _utc(expires)
        )
        await self._revoke_user(user.id, issued_before, expires)
        # The new token's iat must not be earlier than the revocation.
        await asyncio.sleep(max(0.0, issued_before - time.time()))
        token, token_expires = self.tokens.issue(user.id, user.email)
        log.info("password changed; the account's earlier tokens revoked", user_id=user.id)
        return auth_pb2.ChangePasswordResponse(
            session=auth_pb2.LoginResponse(
                token=token,
                token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
                expire_time=timestamp(token_expires),
            )
        )

    async def DeleteAccount(
        self, request: auth_pb2.DeleteAccountRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.DeleteAccountResponse:
        claims = await self._verified(await self._caller_token(context), context)
        user = await self._with_password(claims, request.password, context)
        issued_before, expires = self._user_revocation()
        await asyncio.to_thread(self.store.delete_user, user.id, _utc(issued_before), _utc(expires))
        await self._revoke_user(user.id, issued_before, expires)
        log.info("account deleted; its tokens revoked", user_id=user.id)
        return auth_pb2.DeleteAccountResponse()

    async def ValidateToken(
        self, request: auth_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ValidateTokenResponse:
        await _refuse_long(context, ("token", request.token, MAX_TOKEN_LENGTH))
        claims = await self._verified(request.token, context)
        return auth_pb2.ValidateTokenResponse(
            user_id=claims.user_id, email=claims.email, expire_time=timestamp(claims.expires)
        )

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.WhoAmIResponse:
        claims = await self._verified(await self._caller_token(context), context)
        user = await asyncio.to_thread(self.store.by_id, claims.user_id)
        if user is None:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, ACCOUNT_GONE)
        return auth_pb2.WhoAmIResponse(user=_user_proto(user))

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        """The public keys; ``cache-control`` travels as metadata, and both edges make it
        the HTTP header."""
        await context.send_initial_metadata((("cache-control", JWKS_CACHE_CONTROL),))
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**jwk) for jwk in self.tokens.jwks()])

    async def ListRevocations(
        self, request: auth_pb2.ListRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListRevocationsResponse:
        live = await asyncio.to_thread(live_revocations, self.store)
        return auth_pb2.ListRevocationsResponse(revocations=live)
