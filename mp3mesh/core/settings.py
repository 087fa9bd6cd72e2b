"""Settings, read from the environment by pydantic-settings: each one has one home here.

:class:`RuntimeSettings` is what every process reads (environment, logs, metrics,
traces). Each dependency has a mixin of its own, and a service composes only those it
uses: :class:`MongoSettings`, :class:`BrokerSettings` (RabbitMQ and the pipeline's
queues), :class:`DatabaseSettings` (PostgreSQL), :class:`SmtpSettings`,
:class:`RetentionSettings`, the gRPC TLS, server and client mixins, the upload limit.
A service's own fields stay in its ``settings.py``. In production mode
(``MP3MESH_ENV=production``) nothing secret has a working default: a service refuses to
start instead of running with a value everyone knows.

The environment variable of a field is its name in capitals (``auth_address`` is
``AUTH_ADDRESS``); :func:`env_names` lists them for a settings class.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mp3mesh.core import defaults
from mp3mesh.core.defaults import AUTH_ADDRESS, GATEWAY_ADDRESS, SHIM_PORT

__all__ = [
    "AUTH_ADDRESS",
    "DATABASE_URL",
    "GATEWAY_ADDRESS",
    "SHIM_PORT",
    "AuthClientSettings",
    "AuthVerifierSettings",
    "BrokerSettings",
    "DatabaseSettings",
    "GatewayClientSettings",
    "GrpcServerSettings",
    "GrpcTlsSettings",
    "MongoSettings",
    "RetentionSettings",
    "RuntimeSettings",
    "SmtpSettings",
    "TokenCheckSettings",
    "UploadLimitSettings",
    "env_names",
]

DATABASE_URL = "postgresql://postgres@127.0.0.1:55432/mp3mesh"


class RuntimeSettings(BaseSettings):
    """What every process reads: the environment it runs in, its logs, metrics, traces."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # `production` refuses development's conveniences: a guest broker account, plaintext
    # gRPC without a stated reason, plaintext SMTP to a remote host, auth without its key.
    mp3mesh_env: Literal["development", "production"] = "development"
    # Where the local mesh keeps its data (`make up`, the tests); unused in Kubernetes.
    mp3mesh_var: str = "var"
    # Logs: the lowest level written, and one JSON object per line (`json`) or lines
    # for people (`console`, what stack.env sets for `make up`).
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    # Prometheus metrics (mp3mesh/core/metrics.py) at http://METRICS_LISTEN_HOST:METRICS_PORT/
    # metrics; 0 serves none. Every process needs a port of its own where several share a
    # host (the Procfile gives each its *_METRICS_PORT from stack.env).
    metrics_port: int = 0
    metrics_listen_host: str = "127.0.0.1"
    # Traces (mp3mesh/core/tracing.py), one per job across the services: "otlp" sends spans
    # over OTLP/HTTP to OTLP_ENDPOINT (a collector, Jaeger, Tempo...), "console" prints
    # each as one JSON line on stdout, "none" exports nothing (trace ids still travel
    # between the services and are in every log line).
    traces_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str = "http://127.0.0.1:4318"

    @property
    def production(self) -> bool:
        return self.mp3mesh_env == "production"


class MongoSettings(RuntimeSettings):
    """MongoDB: GridFS buckets `videos` and `mp3s`, and the `jobs` collection (the
    gateway, the converter)."""

    # Where MongoDB is (credentials, if any, in the URL), and the database that holds
    # the GridFS buckets and the jobs collection.
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "mp3mesh"
    # Every MongoDB operation (one GridFS window, one update) ends within this, so a hung
    # or unreachable store fails the call (UNAVAILABLE) instead of hanging it.
    mongo_timeout_ms: int = 10_000

    @property
    def mongo_options(self) -> dict[str, Any]:
        """pymongo client keyword arguments: timeouts for every operation and connect."""
        return {"timeoutMS": self.mongo_timeout_ms, "connectTimeoutMS": self.mongo_timeout_ms}


class BrokerSettings(RuntimeSettings):
    """RabbitMQ and the job pipeline's queues and exchange (the gateway, the converter,
    notification, the operator commands)."""

    # Where RabbitMQ is (credentials in the URL; production refuses the guest account
    # it is given), and the pipeline's queues: uploads are announced on VIDEO_QUEUE,
    # finished jobs on MP3_QUEUE.
    amqp_url: str = (
        "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=30&blocked_connection_timeout=60"
    )
    video_queue: str = "video"
    mp3_queue: str = "mp3"
    # Topic exchange of job changes (status, progress), routed by job id: the converter
    # publishes, each gateway subscribes and feeds WatchJob from it.
    job_events_exchange: str = "job.events"
    # On SIGTERM a consumer asks its handler to stop and exits within this many seconds;
    # a message it could not settle by then is put back by the broker.
    stop_grace_seconds: float = 4.0
    # A message whose handling failed waits this long before each new try (RabbitMQ
    # retry queues with a TTL), then goes to `<queue>.dead`. JSON list in the environment.
    retry_delays_seconds: list[float] = [10, 60, 600, 3600]
    # A consumer touches this file while connected to the broker: its liveness signal
    # (mp3mesh/core/heartbeat.py, probed by `python -m mp3mesh.core.heartbeat`). Unset: no file.
    heartbeat_file: str | None = None

    @model_validator(mode="after")
    def _no_guest_broker_in_production(self) -> BrokerSettings:
        # A URL that was given: the default is the local stack's, and a process that
        # only names the queues (an operator command) may run without one.
        if (
            self.production
            and "amqp_url" in self.model_fields_set
            and "guest:guest@" in self.amqp_url
        ):
            raise ValueError("AMQP_URL uses the guest account; set real broker credentials")
        return self


class RetentionSettings(RuntimeSettings):
    """How long a finished job's files and records are kept (the gateway, the converter,
    notification's ledger)."""

    # A finished job's MP3 (and video, if kept) is deleted this long after the job ended;
    # its record is kept as long again, so a download can say the file expired.
    retention_seconds: float = 24 * 3600


class DatabaseSettings(RuntimeSettings):
    """PostgreSQL: auth's users, notification's sent mails (one database, own tables)."""

    # Where PostgreSQL is. Locally a URL without password: libpq reads it from the
    # file PGPASSFILE names (stack.env).
    database_url: str = DATABASE_URL
    # A down or blackholed PostgreSQL fails a call within these, instead of hanging it.
    database_connect_timeout_seconds: int = 5
    database_statement_timeout_ms: int = 10_000

    @property
    def database_timeouts(self) -> dict[str, Any]:
        """psycopg2.connect keyword arguments that bound connecting and each statement."""
        return {
            "connect_timeout": self.database_connect_timeout_seconds,
            "options": f"-c statement_timeout={self.database_statement_timeout_ms}",
        }


class SmtpSettings(RuntimeSettings):
    """The SMTP server notification sends its mail through: a Gmail address as SMTP_USER
    means Gmail's server unless SMTP_HOST says otherwise; production refuses plaintext
    SMTP to a remote host."""

    # Where the SMTP server is (aiosmtpd on 127.0.0.1:1025 in the local stack).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    # The SMTP login, if the server wants one. GMAIL_ADDRESS / GMAIL_PASSWORD (an
    # app password) work as in the seed projects.
    smtp_user: str | None = Field(None, validation_alias=AliasChoices("SMTP_USER", "GMAIL_ADDRESS"))
    smtp_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SMTP_PASSWORD", "GMAIL_PASSWORD")
    )
    # `starttls` or `ssl` for a remote server (production refuses `none` there); a
    # Gmail SMTP_USER means starttls on smtp.gmail.com:587 unless SMTP_HOST is given.
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    # Each SMTP connect and reply; a blackholed server costs one timeout per try.
    smtp_timeout_seconds: float = 15

    @model_validator(mode="after")
    def _gmail_defaults(self) -> SmtpSettings:
        explicit = self.model_fields_set
        if self.smtp_user and self.smtp_user.endswith("@gmail.com") and "smtp_host" not in explicit:
            self.smtp_host, self.smtp_port, self.smtp_tls = "smtp.gmail.com", 587, "starttls"
        if (
            self.production
            and self.smtp_tls == "none"
            and self.smtp_host not in ("127.0.0.1", "localhost")
        ):
            raise ValueError(
                "SMTP_TLS must be starttls or ssl in production for a remote SMTP host"
            )
        return self


class GrpcTlsSettings(RuntimeSettings):
    """gRPC between services (mp3mesh/core/tls.py): mTLS when the CA, certificate and key
    are given, for servers and the clients that call them alike. Production refuses
    plaintext unless ALLOW_PLAINTEXT_GRPC says something else encrypts it (a service
    mesh doing mTLS between pods)."""

    # PEM files: the CA that signs the mesh's certificates, this process's
    # certificate, and its key. All three, or none (plaintext).
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Each certificate names its service as spiffe://TLS_TRUST_DOMAIN/<service> (a URI
    # SAN); servers authorize callers by it, per method (mp3mesh/core/identity.py).
    tls_trust_domain: str = "mp3mesh"
    # Production only: plaintext gRPC is allowed because something else (a
    # service mesh's sidecars) encrypts it.
    allow_plaintext_grpc: bool = False

    @property
    def grpc_tls(self) -> bool:
        return bool(self.tls_ca_file and self.tls_cert_file and self.tls_key_file)

    @model_validator(mode="after")
    def _tls_whole_and_required_in_production(self) -> GrpcTlsSettings:
        given = [f for f in (self.tls_ca_file, self.tls_cert_file, self.tls_key_file) if f]
        if given and not self.grpc_tls:
            raise ValueError("set TLS_CA_FILE, TLS_CERT_FILE and TLS_KEY_FILE together")
        if self.production and not given and not self.allow_plaintext_grpc:
            raise ValueError(
                "production refuses plaintext gRPC between services: set TLS_CA_FILE,"
                " TLS_CERT_FILE and TLS_KEY_FILE (mTLS), or ALLOW_PLAINTEXT_GRPC=true where"
                " a service mesh encrypts the traffic"
            )
        return self


class GrpcServerSettings(GrpcTlsSettings):
    """What the gRPC servers (auth, the gateway) share."""

    # Calls served at once by one process, streams included; past it grpc answers
    # RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!" before any work is done.
    max_concurrent_rpcs: int = 1000
    # Server reflection (grpcurl list/describe): on in development, off in production
    # unless set to true.
    grpc_reflection: bool | None = None
    # On SIGTERM the server answers health checks NOT_SERVING at once and keeps serving
    # this long, while load balancers (Envoy's health checks, Kubernetes endpoints) take
    # it out of rotation; then it stops taking calls and drains those in flight. Longer
    # than a balancer needs to notice: Envoy checks every 5 s and drops a host after two
    # failed checks (envoy/envoy.yaml.tmpl). 0 locally, where nothing balances.
    drain_delay_seconds: float = 0.0
    # A plaintext port on the same host that serves grpc.health.v1 and nothing else:
    # kubelet's gRPC probes speak no TLS (the service port asks for a certificate when
    # TLS is on). 0: none.
    grpc_health_port: int = 0

    @property
    def reflection(self) -> bool:
        return not self.production if self.grpc_reflection is None else self.grpc_reflection


class AuthClientSettings(GrpcTlsSettings):
    """Where AuthService is, for those who call it (the gateway, the shim)."""

    # host:port of AuthService as this process reaches it (a Service in Kubernetes).
    auth_address: str = AUTH_ADDRESS
    # Over TLS: the name auth's certificate must carry (a DNS SAN), also sent as SNI.
    # Unset: the host of AUTH_ADDRESS.
    auth_tls_name: str | None = None


class TokenCheckSettings(BrokerSettings):
    """What every verifier of tokens reads (auth, the gateway, the shim): the claims a
    token must carry, and the exchange revocations are pushed on (mp3mesh/core/revocations.py).
    Each of them connects to the broker for it (AMQP_URL)."""

    jwt_issuer: str = defaults.JWT_ISSUER
    jwt_audience: str = defaults.JWT_AUDIENCE
    # Topic exchange of revoked tokens: auth publishes, every verifier subscribes.
    revocations_exchange: str = "auth.revocations"

    @model_validator(mode="after")
    def _broker_given_in_production(self) -> TokenCheckSettings:
        if self.production and "guest:guest@" in self.amqp_url:
            raise ValueError(
                "AMQP_URL must be set to real broker credentials: revocations reach this"
                " service over the broker"
            )
        return self


class AuthVerifierSettings(AuthClientSettings, TokenCheckSettings):
    """A verifier other than auth (the gateway, the shim): auth's keys and revocations'
    snapshot come from AuthService at AUTH_ADDRESS."""

    # Deadline of calls to auth: its keys (JWKS) and the revocations' snapshot, fetched
    # at start and now and then, never per request; the gateway's health check of it.
    auth_timeout_seconds: float = 2.0


class GatewayClientSettings(GrpcTlsSettings):
    """Where FileService is, for those who call it (the shim)."""

    # host:port of FileService as this process reaches it (a Service in Kubernetes).
    gateway_address: str = GATEWAY_ADDRESS
    # Over TLS: the name the gateway's certificate must carry (DNS SAN, and SNI). Unset:
    # the host of GATEWAY_ADDRESS.
    gateway_tls_name: str | None = None


class UploadLimitSettings(RuntimeSettings):
    """The upload limit, one variable for the gateway and both edges: a bigger upload is
    refused (413 at the edges before a byte reaches the gateway; RESOURCE_EXHAUSTED at the
    gateway) and nothing of it is kept."""

    # The largest upload, in bytes.
    max_upload_bytes: int = defaults.MAX_UPLOAD_BYTES


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads, aliases included."""
    names: set[str] = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(name.upper())
    return names
