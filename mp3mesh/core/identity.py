"""Who may call what, by the identity in the caller's certificate (mTLS).

Every certificate of the mesh names its service in a URI SAN, SPIFFE style:
``spiffe://<TLS_TRUST_DOMAIN>/<service>`` (``spiffe://mp3mesh/gateway``), beside the DNS
names its server answers to. With TLS on, each server checks every call's caller against
:data:`CALLERS`, a table for the whole mesh in one place: a certificate of the same CA
issued to another service is PERMISSION_DENIED on the methods that service has no
business calling. Health checks are open to any certificate of the mesh. Without TLS
there is no identity, and no check (development; production needs the explicit
ALLOW_PLAINTEXT_GRPC waiver).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog

from mp3mesh.core.interceptors import AroundInterceptor, Rpc

log = structlog.get_logger()

# The REST edges: they speak for end users, and establish the client address.
EDGES = frozenset({"envoy", "shim"})
_AUTH, _FILES = "/mp3mesh.auth.v1.AuthService/", "/mp3mesh.files.v1.FileService/"
# Method (or service prefix, ending in "/") -> the services that may call it; the
# longest match wins. ValidateToken, the JWKS and the revocations serve the token
# checks of the gateway and the edges; everything a user does comes through an edge.
CALLERS: dict[str, frozenset[str]] = {
    _AUTH: EDGES,
    _AUTH + "ValidateToken": EDGES | {"gateway"},
    _AUTH + "GetJwks": EDGES | {"gateway"},
    _AUTH + "ListRevocations": EDGES | {"gateway"},
    _FILES: EDGES,
    "/mp3mesh.health.v1.MeshHealthService/": EDGES,
}
# Open to every certificate of the mesh: load balancers' and peers' health checks, and
# reflection where it is on (development).
ANY_SERVICE = ("/grpc.health.v1.", "/grpc.reflection.")


def allowed_callers(method: str) -> frozenset[str] | None:
    """The services that may call ``method``; None: any service of the mesh."""
    if method.startswith(ANY_SERVICE):
        return None
    matches = [
        key for key in CALLERS if method == key or (key.endswith("/") and method.startswith(key))
    ]
    return CALLERS[max(matches, key=len)] if matches else frozenset()


def caller_service(context: grpc.aio.ServicerContext, trust_domain: str) -> str | None:
    """The service named by the caller's certificate (its SPIFFE id in ``trust_domain``),
    or None: no TLS, or no such id."""
    prefix = f"spiffe://{trust_domain}/"
    for value in context.auth_context().get("peer_spiffe_id", ()):
        text = value.decode(errors="replace")
        if text.startswith(prefix) and "/" not in text[len(prefix) :]:
            return text[len(prefix) :]
    return None


def over_tls(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call came over TLS (a plaintext one says "insecure")."""
    return b"ssl" in context.auth_context().get("transport_security_type", ())


def from_edge(context: grpc.aio.ServicerContext, trust_domain: str) -> bool:
    """Whether the caller is an edge, whose word on the client address counts: over
    TLS by its certificate; in plaintext development, every caller."""
    return not over_tls(context) or caller_service(context, trust_domain) in EDGES


class CallerAuthorization(AroundInterceptor):
    """PERMISSION_DENIED for a caller whose certificate names no service :data:`CALLERS`
    allows on the method (installed by mp3mesh.core.grpc_server when serving over TLS)."""

    def __init__(self, trust_domain: str) -> None:
        self.trust_domain = trust_domain

    def applies_to(self, rpc: Rpc) -> bool:
        return allowed_callers(rpc.method) is not None

    @asynccontextmanager
    async def around(self, rpc: Rpc, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        allowed = allowed_callers(rpc.method) or frozenset()
        caller = caller_service(context, self.trust_domain)
        if caller not in allowed:
            log.warning("caller refused", method=rpc.method, caller=caller or "no service id")
            who = f"service {caller!r}" if caller else "a certificate naming no mesh service"
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{who} may not call {rpc.method}"
            )
        yield
