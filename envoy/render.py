"""Render envoy/envoy.yaml.tmpl into a config Envoy can load.

Envoy has no environment-variable substitution in its bootstrap, so the ports, upstream
addresses and the upload limit are filled in here, from the environment (see the comment
block at the top of the template for every variable and its default):

    python envoy/render.py -o var/envoy.yaml
    envoy -c var/envoy.yaml --disable-hot-restart

Standard library only, so it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import re
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "envoy.yaml.tmpl"
DEFAULT_DESCRIPTOR = HERE / "descriptor.binpb"
INT64_MAX = 2**63 - 1

# Replies Envoy makes itself get a google.rpc.Status body whose code is the gRPC code
# grpc-gateway's HTTPStatusFromCode maps to that HTTP status (404 -> NOT_FOUND, ...).
# Any other 4xx/5xx: UNKNOWN (2).
GRPC_CODE_FOR_HTTP_STATUS: dict[int, tuple[int, str]] = {
    400: (3, "INVALID_ARGUMENT"),
    401: (16, "UNAUTHENTICATED"),
    403: (7, "PERMISSION_DENIED"),
    404: (5, "NOT_FOUND"),
    405: (12, "UNIMPLEMENTED"),
    408: (4, "DEADLINE_EXCEEDED"),
    409: (10, "ABORTED"),
    413: (8, "RESOURCE_EXHAUSTED"),
    429: (8, "RESOURCE_EXHAUSTED"),
    431: (8, "RESOURCE_EXHAUSTED"),
    500: (13, "INTERNAL"),
    501: (12, "UNIMPLEMENTED"),
    502: (14, "UNAVAILABLE"),
    503: (14, "UNAVAILABLE"),
    504: (4, "DEADLINE_EXCEEDED"),
}
UNKNOWN_CODE = 2
# Envoy's own words for an upstream it could not reach or that broke off ("upstream
# connect error or disconnect/reset before headers. reset reason: ..., transport failure
# reason: TLS_error: ... CERTIFICATE_VERIFY_FAILED") describe the mesh's insides: its
# replies of these statuses say what the shim says instead (mp3mesh/shim/errors.py
# BACKEND_UNREACHABLE; tests/integration/test_envoy_config.py checks they agree).
UNREACHABLE_STATUSES = (502, 503, 504)
BACKEND_UNREACHABLE = "the service behind this edge cannot be reached right now; try again shortly"
HEALTH = "/(healthz|readyz)"
NOT_READY = "not ready: draining, or no healthy AuthService or FileService host"
# GET /health's answer when the gateway, which serves it, cannot be reached (the shim's
# GATEWAY_UNREACHABLE_HEALTH; tests/integration/test_envoy_config.py checks they agree).
GATEWAY_UNREACHABLE_HEALTH = {
    "status": "unhealthy",
    "services": {
        "mp3mesh.files.v1.FileService": "UNAVAILABLE",
        "mp3mesh.auth.v1.AuthService": "UNKNOWN",
    },
}

# What a token refused by jwt_authn is told: Envoy's words (its failure message, kept in
# dynamic metadata by failed_status_in_metadata) -> the services' (mp3mesh/core/tokens.py;
# tests/integration/test_envoy_config.py checks they agree), so both edges answer alike. Anything
# else jwt_authn refuses is MALFORMED; a JWKS it could not fetch is UNAVAILABLE.
JWT_FAILURES = {
    "Jwt is missing": "missing bearer token: log in and send 'authorization: Bearer <token>'",
    "Jwt is expired": "token has expired; log in again",
    "Jwt verification fails": "token signature is invalid",
    "Audiences in Jwt are not allowed": "token is invalid: Audience doesn't match",
    "Jwt issuer is not configured": "token is invalid: Invalid issuer",
    "Jwks doesn't have key to match kid or alg from Jwt": (
        "token was signed with a key or algorithm no longer accepted; log in again"
    ),
}
JWT_MALFORMED = "token is invalid: not a signed JWT"
JWKS_FETCH_FAILED = "Jwks remote fetch is failed"
JWKS_UNAVAILABLE = "cannot check your token right now: auth service unavailable"
# A backend that cannot be connected to (auth down: a login), as the shim says it
# (mp3mesh/shim/errors.py; tests/e2e/test_token_push.py checks the copies agree).
BACKEND_UNREACHABLE = "the service behind this edge cannot be reached right now; try again shortly"
UNAUTHENTICATED, UNAVAILABLE = 16, 14


def _mesh_defaults() -> ModuleType:
    """mp3mesh/core/defaults.py, the defaults the services use, loaded by its path: this
    script runs without the project installed (in Envoy's image, where the file is
    copied next to it), so it cannot import the mp3mesh.core package."""
    for path in (HERE / "defaults.py", HERE.parent / "mp3mesh" / "core" / "defaults.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location("mp3mesh_defaults", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"render.py: mp3mesh/core/defaults.py is neither next to {HERE} nor above it")


MESH = _mesh_defaults()
DEFAULTS = {
    # Where REST clients reach Envoy (HTTP/1.1 or h2c; HTTPS with ENVOY_TLS_*).
    "ENVOY_LISTEN_ADDRESS": "127.0.0.1",
    # The port REST clients reach Envoy on.
    "ENVOY_PORT": "8000",
    # Envoy's admin interface, always bound to 127.0.0.1; Prometheus metrics at
    # /stats/prometheus.
    "ENVOY_ADMIN_PORT": "9901",
    # A listener on ENVOY_LISTEN_ADDRESS serving the admin's /stats/prometheus and nothing
    # else, for a scraper outside the pod (the admin can drain or stop Envoy); 0: none.
    "ENVOY_METRICS_PORT": "0",
    "AUTH_ADDRESS": MESH.AUTH_ADDRESS,
    "GATEWAY_ADDRESS": MESH.GATEWAY_ADDRESS,
    # The shim, for multipart uploads and the web page (unset: SHIM_LISTEN_HOST:SHIM_PORT).
    "SHIM_ADDRESS": f"{MESH.SHIM_LISTEN_HOST}:{MESH.SHIM_PORT}",
    "MAX_UPLOAD_BYTES": str(MESH.MAX_UPLOAD_BYTES),
    "ENVOY_TRUSTED_PROXY_HOPS": "0",
    "JWT_ISSUER": MESH.JWT_ISSUER,
    "JWT_AUDIENCE": MESH.JWT_AUDIENCE,
}
# Where an unset *_ADDRESS falls back to in the local stack, where Envoy runs on the
# same host as the services: their listen addresses (the shim's is SHIM_LISTEN_HOST and
# SHIM_PORT, as mp3mesh/shim/settings.py reads them).
FALLBACKS = {
    "AUTH_ADDRESS": "AUTH_LISTEN",
    "GATEWAY_ADDRESS": "GATEWAY_LISTEN",
}
SHIM_FALLBACKS = ("SHIM_LISTEN_HOST", "SHIM_PORT")
# TLS: the listener's certificate (HTTPS for clients), and the mesh's CA, certificate and
# key for mTLS to the gRPC services (the same variables the services read), and the names
# the services' certificates must carry (AUTH_TLS_NAME, GATEWAY_TLS_NAME; default: the
# hosts of their addresses). Unset: plaintext.
LISTENER_TLS = ("ENVOY_TLS_CERT_FILE", "ENVOY_TLS_KEY_FILE")
UPSTREAM_TLS = ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")
# Every environment variable the renderer reads.
ENV_NAMES = frozenset(
    [
        *DEFAULTS,
        *FALLBACKS.values(),
        *SHIM_FALLBACKS,
        # The descriptor set the transcoder loads (`make descriptor`: buf build of protos/);
        # unset: descriptor.binpb next to render.py.
        "ENVOY_DESCRIPTOR",
        *LISTENER_TLS,
        *UPSTREAM_TLS,
        "AUTH_TLS_NAME",
        "GATEWAY_TLS_NAME",
    ]
)

_HOST = re.compile(r"^[A-Za-z0-9._-]+$")


class ConfigError(ValueError):
    pass


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}={value!r} is not a TCP port")
    return int(value)


def _port_or_zero(name: str, value: str) -> int:
    return 0 if value == "0" else _port(name, value)


def _host(name: str, value: str) -> str:
    if not _HOST.match(value):
        raise ConfigError(f"{name}={value!r} is not a host name or IPv4 address")
    return value


def _claim(name: str, value: str) -> str:
    """An issuer or audience, as a JSON string (safe in the YAML flow it lands in)."""
    if not value or not value.isprintable():
        raise ConfigError(f"{name}={value!r} must be a non-empty printable string")
    return json.dumps(value)


def _host_port(name: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ConfigError(f"{name}={value!r} must be host:port")
    return _host(name, host), _port(name, port)


def _status_is(op: str, status: int, key: str) -> dict[str, Any]:
    value = {"default_value": status, "runtime_key": f"mp3mesh.local_reply.{key}"}
    return {"status_code_filter": {"comparison": {"op": op, "value": value}}}


def _jwt_failure(message: str | None = None) -> dict[str, Any]:
    """jwt_authn refused the token (with ``message``, if given)."""
    value = {"string_match": {"exact": message}} if message else {"present_match": True}
    path = [{"key": "jwt_failure"}, {"key": "message"}]
    matcher = {"filter": "envoy.filters.http.jwt_authn", "path": path, "value": value}
    return {"metadata_filter": {"matcher": matcher, "match_if_key_not_found": False}}


def _jwt_mappers(not_native_grpc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """jwt_authn's refusals (401, or 403 for an audience) in the services' words: as a
    status JSON over REST, as grpc-message (status from the HTTP code) over native gRPC."""
    refusals = [
        *((envoy, ours, 401, UNAUTHENTICATED) for envoy, ours in JWT_FAILURES.items()),
        (JWKS_FETCH_FAILED, JWKS_UNAVAILABLE, 503, UNAVAILABLE),
        (None, JWT_MALFORMED, 401, UNAUTHENTICATED),
    ]
    mappers = []
    for envoy, ours, status, code in refusals:
        refused = _jwt_failure(envoy)
        what = f"jwt_authn: {envoy or 'any other refusal'} -> {status}"
        rest = {"and_filter": {"filters": [refused, not_native_grpc]}}
        mappers.append(
            (
                what,
                {
                    "filter": rest,
                    "status_code": status,
                    "body": {"inline_string": ours},
                    "body_format_override": _status_json(code),
                },
            )
        )
        mappers.append(
            (
                f"{what}, native gRPC",
                {"filter": refused, "status_code": status, "body": {"inline_string": ours}},
            )
        )
    return mappers


def _header(name: str, **match: Any) -> dict[str, Any]:
    return {"header_filter": {"header": {"name": name, **match}}}


def _status_json(code: int) -> dict[str, Any]:
    return {
        "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []},
        "content_type": "application/json",
    }


def local_reply_mappers() -> list[tuple[str, dict[str, Any]]]:
    """local_reply_config mappers, each with a comment: first match wins."""
    # Native gRPC callers (content-type application/grpc, not transcoded) keep Envoy's own
    # gRPC-style local replies. Transcoded requests carry application/grpc by the time a
    # reply is made, but also the x-envoy-original-path the transcoder sets.
    not_native_grpc = {
        "or_filter": {
            "filters": [
                _header(
                    "content-type",
                    string_match={"prefix": "application/grpc"},
                    invert_match=True,
                    treat_missing_header_as_empty=True,
                ),
                _header("x-envoy-original-path", present_match=True),
            ]
        }
    }
    mappers = [
        (
            "/healthz, /readyz failing (an empty body otherwise): 14 UNAVAILABLE",
            {
                "filter": {
                    "and_filter": {
                        "filters": [
                            _status_is("EQ", 503, "health"),
                            _header(":path", string_match={"safe_regex": {"regex": HEALTH}}),
                        ]
                    }
                },
                "body": {"inline_string": NOT_READY},
                "body_format_override": _status_json(14),
            },
        )
    ]
    mappers.extend(_jwt_mappers(not_native_grpc))
    mappers.append(
        (
            "a backend Envoy cannot connect to (UF, UH): 14 UNAVAILABLE, in the shim's words",
            {
                "filter": {
                    "and_filter": {
                        "filters": [
                            {"response_flag_filter": {"flags": ["UF", "UH"]}},
                            not_native_grpc,
                        ]
                    }
                },
                "status_code": 503,
                "body": {"inline_string": BACKEND_UNREACHABLE},
                "body_format_override": _status_json(UNAVAILABLE),
            },
        )
    )
    for status, (code, name) in sorted(GRPC_CODE_FOR_HTTP_STATUS.items()):
        mapper: dict[str, Any] = {
            "filter": {
                "and_filter": {"filters": [_status_is("EQ", status, str(status)), not_native_grpc]}
            },
            "body_format_override": _status_json(code),
        }
        if status in UNREACHABLE_STATUSES:
            mapper["body"] = {"inline_string": BACKEND_UNREACHABLE}
        mappers.append((f"HTTP {status}: {code} {name}", mapper))
    for status in UNREACHABLE_STATUSES:  # native gRPC: the words become grpc-message
        mappers.append(
            (
                f"HTTP {status}, native gRPC: the upstream failure in the shim's words",
                {
                    "filter": _status_is("EQ", status, f"{status}_grpc"),
                    "body": {"inline_string": BACKEND_UNREACHABLE},
                },
            )
        )
    mappers.append(
        (
            f"any other HTTP 4xx/5xx: {UNKNOWN_CODE} UNKNOWN",
            {
                "filter": {
                    "and_filter": {"filters": [_status_is("GE", 400, "other"), not_native_grpc]}
                },
                "body_format_override": _status_json(UNKNOWN_CODE),
            },
        )
    )
    return mappers


def _mappers_yaml(indent: str) -> str:
    """The mappers as YAML list items, one JSON flow mapping each (JSON is YAML)."""
    return "\n".join(
        f"{indent}# {comment}\n{indent}- {json.dumps(mapper)}"
        for comment, mapper in local_reply_mappers()
    )


def _tls_files(env: Mapping[str, str], names: tuple[str, ...]) -> list[str] | None:
    """The files ``names`` name, all of them or none (None)."""
    files = [env.get(name, "").strip() for name in names]
    if not any(files):
        return None
    if not all(files):
        raise ConfigError(f"set {', '.join(names)} together")
    for name, file in zip(names, files, strict=True):
        if not Path(file).is_absolute() or any(c in file for c in " :#'\"{}[],&*"):
            raise ConfigError(f"{name}={file!r} needs a plain absolute path")
    return files


def _san_matcher(name: str) -> dict[str, Any]:
    """The upstream certificate must carry ``name``: an IP address SAN for an address, a
    DNS SAN otherwise."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return {"san_type": "DNS", "matcher": {"exact": name}}
    return {"san_type": "IP_ADDRESS", "matcher": {"exact": name}}


def _tls_socket(
    context: str, cert: str, key: str, ca: str | None = None, server_name: str | None = None
) -> str:
    """A transport_socket line (one JSON flow mapping) for the template. Upstream (with
    ``ca``): the server's certificate must be the CA's and name ``server_name``, which
    is also sent as SNI."""
    common: dict[str, Any] = {
        "tls_certificates": [
            {"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}
        ],
        "alpn_protocols": ["h2"] if ca else ["h2", "http/1.1"],
    }
    typed: dict[str, Any] = {
        "@type": f"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{context}",
    }
    if ca:
        common["validation_context"] = {"trusted_ca": {"filename": ca}}
        if server_name:
            common["validation_context"]["match_typed_subject_alt_names"] = [
                _san_matcher(server_name)
            ]
            typed["sni"] = server_name
    typed["common_tls_context"] = common
    socket = {"name": "envoy.transport_sockets.tls", "typed_config": typed}
    return f"transport_socket: {json.dumps(socket)}"


SELF_TLS_SOCKET = {
    "name": "envoy.transport_sockets.tls",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {"alpn_protocols": ["http/1.1"]},
    },
}


def _self_host(listen: str) -> str:
    """Where this Envoy reaches its own listener: loopback when it listens everywhere."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen, listen)  # noqa: S104


def tls_lines(env: Mapping[str, str], upstream_names: Mapping[str, str]) -> dict[str, str]:
    """The TLS lines of the template; ``upstream_names``: template key (AUTH_UPSTREAM_TLS,
    GATEWAY_UPSTREAM_TLS) -> the name that upstream's certificate must carry."""
    listener = _tls_files(env, LISTENER_TLS)
    upstream = _tls_files(env, UPSTREAM_TLS)
    plaintext = "# plaintext gRPC: TLS_CA_FILE, TLS_CERT_FILE and TLS_KEY_FILE unset"
    return {
        "SELF_SCHEME": "https" if listener else "http",
        # Itself over loopback: nothing to verify, only to speak the listener's TLS.
        "SELF_TLS": f"transport_socket: {json.dumps(SELF_TLS_SOCKET)}"
        if listener
        else "# plaintext, as the listener",
        "LISTENER_TLS": _tls_socket("DownstreamTlsContext", *listener)
        if listener
        else "# plaintext listener: ENVOY_TLS_CERT_FILE and ENVOY_TLS_KEY_FILE unset",
        **{
            key: _tls_socket("UpstreamTlsContext", upstream[1], upstream[2], upstream[0], name)
            if upstream
            else plaintext
            for key, name in upstream_names.items()
        },
    }


def _metrics_listener_yaml(address: str, port: str, indent: str) -> str:
    """The listener that serves only /stats/prometheus (from the admin interface), as a
    YAML list item; nothing when ``port`` is 0."""
    if port == "0":
        return ""
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network"
        ".http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "metrics",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "metrics",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"path": "/stats/prometheus"}, "route": {"cluster": "admin"}}
                    ],
                }
            ]
        },
        "http_filters": [router],
    }
    listener = {
        "name": "metrics",
        "address": {"socket_address": {"address": address, "port_value": int(port)}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    comment = "# Prometheus: the admin's /stats/prometheus only (ENVOY_METRICS_PORT)"
    return f"{indent}{comment}\n{indent}- {json.dumps(listener)}"


def values(env: Mapping[str, str]) -> dict[str, str]:
    """The template's ${NAME}s from ``env``, checked."""

    def get(name: str) -> str:
        value = env.get(name) or env.get(FALLBACKS.get(name, ""), "") or DEFAULTS[name]
        if name == "SHIM_ADDRESS" and not env.get(name):
            host, port = DEFAULTS[name].rsplit(":", 1)
            value = f"{env.get('SHIM_LISTEN_HOST') or host}:{env.get('SHIM_PORT') or port}"
        return value.strip()

    auth_host, auth_port = _host_port("AUTH_ADDRESS", get("AUTH_ADDRESS"))
    gw_host, gw_port = _host_port("GATEWAY_ADDRESS", get("GATEWAY_ADDRESS"))
    shim_host, shim_port = _host_port("SHIM_ADDRESS", get("SHIM_ADDRESS"))
    hops = get("ENVOY_TRUSTED_PROXY_HOPS")
    if not hops.isdigit() or int(hops) > 10:
        raise ConfigError(f"ENVOY_TRUSTED_PROXY_HOPS={hops!r} is not a count of proxies (0-10)")
    limit = get("MAX_UPLOAD_BYTES")
    if not limit.isdigit() or not 0 < int(limit) < INT64_MAX:
        raise ConfigError(f"MAX_UPLOAD_BYTES={limit!r} is not a positive byte count")
    descriptor = Path(env.get("ENVOY_DESCRIPTOR") or DEFAULT_DESCRIPTOR).resolve()
    if not _HOST.match(descriptor.name) or any(c in str(descriptor) for c in " :#'\"{}[],&*"):
        raise ConfigError(f"ENVOY_DESCRIPTOR={descriptor} needs a plain path")
    return {
        "ENVOY_LISTEN_ADDRESS": _host("ENVOY_LISTEN_ADDRESS", get("ENVOY_LISTEN_ADDRESS")),
        "ENVOY_PORT": str(_port("ENVOY_PORT", get("ENVOY_PORT"))),
        "ENVOY_ADMIN_PORT": str(_port("ENVOY_ADMIN_PORT", get("ENVOY_ADMIN_PORT"))),
        "ENVOY_METRICS_PORT": str(_port_or_zero("ENVOY_METRICS_PORT", get("ENVOY_METRICS_PORT"))),
        "AUTH_HOST": auth_host,
        "AUTH_PORT": str(auth_port),
        "GATEWAY_HOST": gw_host,
        "GATEWAY_PORT": str(gw_port),
        "SHIM_HOST": shim_host,
        "SHIM_PORT": str(shim_port),
        "MAX_UPLOAD_BYTES": str(int(limit)),
        "ENVOY_TRUSTED_PROXY_HOPS": str(int(hops)),
        "MAX_UPLOAD_BYTES_PLUS_ONE": str(int(limit) + 1),
        "ENVOY_DESCRIPTOR": str(descriptor),
        "JWT_ISSUER": _claim("JWT_ISSUER", get("JWT_ISSUER")),
        "JWT_AUDIENCE": _claim("JWT_AUDIENCE", get("JWT_AUDIENCE")),
    }


def render(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    subs = values(env)
    names = {
        "AUTH_UPSTREAM_TLS": _host("AUTH_TLS_NAME", env.get("AUTH_TLS_NAME") or subs["AUTH_HOST"]),
        "GATEWAY_UPSTREAM_TLS": _host(
            "GATEWAY_TLS_NAME", env.get("GATEWAY_TLS_NAME") or subs["GATEWAY_HOST"]
        ),
    }
    subs |= tls_lines(env, names)
    subs["SELF_HOST"] = _self_host(subs["ENVOY_LISTEN_ADDRESS"])
    subs["LOCAL_REPLY_MAPPERS"] = _mappers_yaml(" " * 20)
    subs["METRICS_LISTENER"] = _metrics_listener_yaml(
        subs["ENVOY_LISTEN_ADDRESS"], subs["ENVOY_METRICS_PORT"], " " * 4
    )
    subs["GATEWAY_UNREACHABLE_HEALTH"] = json.dumps(
        GATEWAY_UNREACHABLE_HEALTH, separators=(",", ":"), sort_keys=True
    )
    body = string.Template(TEMPLATE.read_text()).substitute(subs)
    header = f"# GENERATED by envoy/render.py from {TEMPLATE.name}; edit the template, not this.\n"
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    parser.add_argument(
        "--require-descriptor",
        action="store_true",
        help="fail if the descriptor set does not exist yet (scripts/build_descriptor.sh)",
    )
    args = parser.parse_args(argv)
    try:
        text = render()
    except ConfigError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    if args.require_descriptor:
        descriptor = values(os.environ)["ENVOY_DESCRIPTOR"]
        if not Path(descriptor).is_file():
            print(
                f"render.py: {descriptor} is missing; run scripts/build_descriptor.sh",
                file=sys.stderr,
            )
            return 2
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
