"""AuthService: Register, Login, Logout, ValidateToken, WhoAmI, GetJwks, ListRevocations."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import NoReturn

import grpc
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from auth.store import EmailTaken, UserRecord, UserStore
from auth.throttle import AddressLimits, HashBound, LoginThrottle, Throttled, client_address
from auth.tokens import TokenIssuer
from meshcore.credentials import basic_credentials, bearer_token
from meshcore.grpc_server import abort, require_credentials
from meshcore.identity import from_edge
from meshcore.limits import (
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_TOKEN_LENGTH,
    too_long,
)
from meshcore.timestamps import timestamp
from meshcore.tokens import MISSING, Claims, InvalidToken
from mp3mesh.auth.v1 import auth_pb2, auth_pb2_grpc

log = structlog.get_logger()

MIN_PASSWORD_LENGTH = 8
BAD_CREDENTIALS = "email or password is incorrect"
# How long an edge or a client may keep the JWKS: a new signing key is published this
# long before it signs (list it in JWT_PREVIOUS_KEY_FILES first, see README: rotation),
# and a verifier that meets an unknown kid asks again anyway.
JWKS_CACHE_CONTROL = "public, max-age=300"


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
        address_limits: AddressLimits,
        register_hashing: HashBound,
        trust_domain: str = "mp3mesh",
    ) -> None:
        self.store = store
        self.tokens = tokens
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
        if not MIN_PASSWORD_LENGTH <= len(request.password) <= MAX_PASSWORD_LENGTH:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            )
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
        """The token's claims, or UNAUTHENTICATED: invalid, revoked, or its account gone."""
        try:
            claims = self.tokens.verifier.verify(token)
        except InvalidToken as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        exists, revoked = await asyncio.to_thread(
            self.store.token_standing, claims.user_id, claims.token_id
        )
        if revoked:
            await abort(
                context, grpc.StatusCode.UNAUTHENTICATED, "token was revoked (logged out); log in"
            )
        if not exists:
            await abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "the account behind this token no longer exists",
            )
        return claims

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
        await asyncio.to_thread(self.store.revoke, claims.token_id, claims.expires)
        log.info("logged out", user_id=claims.user_id)
        return auth_pb2.LogoutResponse()

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
            await abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "the account behind this token no longer exists",
            )
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
        live = await asyncio.to_thread(self.store.live_revocations)
        return auth_pb2.ListRevocationsResponse(
            revocations=[
                auth_pb2.Revocation(token_id=jti, expire_time=timestamp(expires))
                for jti, expires in live
            ]
        )
