"""gRPC between the services over TLS with client certificates (mTLS), from the
``TLS_CA_FILE``, ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` settings: every server asks for a
certificate signed by the CA and every client presents its own. Without them, plaintext
(development, or production behind a service mesh that encrypts, with the waiver)."""

from __future__ import annotations

from pathlib import Path

import grpc

from mp3mesh.core.settings import GrpcTlsSettings


def _read(path: str | None) -> bytes:
    assert path is not None
    return Path(path).read_bytes()


def server_credentials(settings: GrpcTlsSettings) -> grpc.ServerCredentials | None:
    """mTLS server credentials (a client certificate is required), or None: plaintext."""
    if not settings.grpc_tls:
        return None
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=_read(settings.tls_ca_file),
        require_client_auth=True,
    )


def channel_credentials(settings: GrpcTlsSettings) -> grpc.ChannelCredentials | None:
    """The credentials a service calls another with (its certificate), or None."""
    if not settings.grpc_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.tls_ca_file),
        private_key=_read(settings.tls_key_file),
        certificate_chain=_read(settings.tls_cert_file),
    )
