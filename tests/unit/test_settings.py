"""One home per setting: the settings classes, stack.env and Envoy's renderer agree.

Each setting is defined once (mp3mesh/core/settings.py and each service's settings.py, with
the defaults Envoy's renderer needs in mp3mesh/core/defaults.py, which it loads too).
stack.env spells some values out for people: these tests fail when it contradicts the
defaults or sets a variable nothing reads. `service_env_names()` is also what a check of
Kubernetes manifests needs.
"""

from __future__ import annotations

import re

import pytest
from dotenv import dotenv_values

from devstack import ROOT, SERVICE_SETTINGS
from mp3mesh.core.settings import env_names
from tests.helpers import envoy_renderer, service_env_names

# stack.env values that differ from the default on purpose.
# People read the local stack's logs, and its traces on the console.
STACK_OVERRIDES = {"LOG_FORMAT": "console", "TRACES_EXPORTER": "console"}
# Read by something other than the settings and the renderer.
PROCFILE_VARS = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", (ROOT / "Procfile").read_text()))
# Read by the runtime beneath the services: CPython, and libpq (the database password).
INTERPRETER_VARS = {"PYTHONUNBUFFERED", "PGPASSFILE"}


def stack_env() -> dict[str, str]:
    return {name: value or "" for name, value in dotenv_values(ROOT / "stack.env").items()}


def field_defaults() -> dict[str, dict[str, object]]:
    """Each variable's default, per service that reads it (aliased fields left out)."""
    defaults: dict[str, dict[str, object]] = {}
    for service, cls in SERVICE_SETTINGS.items():
        for name, field in cls.model_fields.items():
            if field.validation_alias is None:
                defaults.setdefault(name.upper(), {})[service] = field.default
    return defaults


def test_every_service_reads_a_shared_setting_with_one_default() -> None:
    for variable, by_service in field_defaults().items():
        assert len(set(map(repr, by_service.values()))) == 1, (variable, by_service)


def test_listen_addresses_are_where_clients_look() -> None:
    defaults = field_defaults()
    assert defaults["AUTH_LISTEN"]["auth"] == defaults["AUTH_ADDRESS"]["gateway"]
    assert defaults["GATEWAY_LISTEN"]["gateway"] == defaults["GATEWAY_ADDRESS"]["shim"]


def test_stack_env_sets_only_what_something_reads() -> None:
    readers = set().union(*service_env_names().values(), PROCFILE_VARS, INTERPRETER_VARS)
    unread = set(stack_env()) - readers
    assert not unread, f"stack.env sets variables nothing reads: {sorted(unread)}"
    assert PROCFILE_VARS <= set(stack_env()), "the Procfile uses variables stack.env lacks"


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_stack_env_agrees_with_the_defaults(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """stack.env spells the defaults out for people; it must not contradict them. Each
    service reads it as it does under `make up`, and gets its defaults."""
    cls = SERVICE_SETTINGS[service]
    for variable in env_names(cls):
        monkeypatch.delenv(variable, raising=False)
    env = stack_env()
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = cls()
    checked = 0
    for name, field in cls.model_fields.items():
        if name.upper() in env:
            expected = STACK_OVERRIDES.get(name.upper(), field.default)
            assert getattr(settings, name) == expected, (name.upper(), env[name.upper()])
            checked += 1
    assert checked > 0


def test_stack_env_agrees_with_envoy_defaults() -> None:
    envoy = envoy_renderer().DEFAULTS
    shared = [(name, value) for name, value in stack_env().items() if name in envoy]
    assert shared
    for name, value in shared:
        assert value == envoy[name], name


def test_no_secret_setting_has_a_working_default() -> None:
    """Secrets come from the environment only: every SecretStr field defaults to nothing
    (and production refuses to start without the JWT signing key:
    tests/unit/test_auth_tokens.py)."""
    secret_fields = []
    for service, cls in SERVICE_SETTINGS.items():
        for name, field in cls.model_fields.items():
            if "SecretStr" in str(field.annotation):
                secret_fields.append(f"{service}.{name}")
                assert field.default in (None, ()), (service, name, field.default)
    assert {"notification.smtp_password"} <= set(secret_fields)
