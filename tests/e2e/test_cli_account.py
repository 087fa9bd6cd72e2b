"""`mp3mesh passwd` and `mp3mesh delete-account`, as a person runs them: the installed
console script against the real stack through Envoy's gRPC edge (tests/test_cli.py's
harness). A password change logs the account's other sessions out; this one goes on."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from devstack import Stack
from tests.e2e.test_cli import Cli, one_line_error

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a brand new password"


@pytest.fixture
def cli(stack: Stack, tmp_path: Path) -> Cli:
    return Cli(tmp_path, f"127.0.0.1:{stack.env['ENVOY_PORT']}")


def _account(cli: Cli) -> str:
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    assert cli("register", email).returncode == 0
    assert cli("login", email).returncode == 0
    return email


def test_passwd_keeps_this_session_and_ends_the_others(
    cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    email = _account(cli)
    elsewhere = Cli(tmp_path_factory.mktemp("elsewhere"), cli.server)
    assert elsewhere("login", email).returncode == 0
    wrong = cli("passwd", password="not the password", MP3MESH_NEW_PASSWORD=NEW_PASSWORD)
    assert one_line_error(wrong) == "password is incorrect"
    changed = cli("--json", "passwd", MP3MESH_NEW_PASSWORD=NEW_PASSWORD)
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["email"] == email
    assert cli("whoami").returncode == 0, "this session goes on with its new token"
    assert "revoked" in one_line_error(elsewhere("whoami"))
    assert cli("login", email, password=NEW_PASSWORD).returncode == 0


def test_delete_account_forgets_the_token_and_the_account(cli: Cli) -> None:
    email = _account(cli)
    assert cli.json("delete-account") == {"email": email, "server": cli.server, "deleted": True}
    assert "not logged in" in one_line_error(cli("whoami"))
    assert one_line_error(cli("login", email)) == "email or password is incorrect"
