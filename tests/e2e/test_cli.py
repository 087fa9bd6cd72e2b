"""The `mp3mesh` CLI as a person and a script run it: the installed console script, as a
subprocess, against the real stack through Envoy's gRPC edge."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from devstack import PASSWORD, ROOT, Stack, free_port
from mp3mesh.cli.errors import rpc_error
from tests.helpers import ffprobe

pytestmark = pytest.mark.e2e

MP3MESH = ROOT / ".venv/bin/mp3mesh"


@dataclass
class Cli:
    """The console script with its own config directory (XDG_CONFIG_HOME) and server."""

    home: Path
    server: str

    @property
    def credentials(self) -> Path:
        return self.home / "config/mp3mesh/credentials.json"

    def __call__(
        self, *args: str, password: str | None = PASSWORD, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "MP3MESH_SERVER": self.server,
            "COLUMNS": "200",
            **env,
        }
        environ.pop("MP3MESH_PASSWORD", None)
        if password is not None:
            environ["MP3MESH_PASSWORD"] = password
        return subprocess.run(
            [str(MP3MESH), *args],
            env=environ,
            cwd=self.home,
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def json(self, *args: str) -> dict:
        done = self("--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a failed run: a single `error:` line, no traceback."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0].removeprefix("error: ")


@pytest.fixture
def cli(stack: Stack, tmp_path: Path) -> Cli:
    return Cli(tmp_path, f"127.0.0.1:{stack.env['ENVOY_PORT']}")


@pytest.fixture
def user(cli: Cli) -> str:
    """A registered and logged-in user of ``cli``; the email."""
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    assert cli("register", email).returncode == 0
    assert cli("login", email).returncode == 0
    return email


def test_convert_end_to_end_with_progress(cli: Cli, media: Path, stack: Stack) -> None:
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    # Password typed at the prompt (twice on register), as a person does.
    registered = cli("register", email, password=None, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert registered.returncode == 0, registered.stderr
    assert f"Registered {email}" in registered.stdout
    logged_in = cli("login", email, password=None, input=f"{PASSWORD}\n")
    assert logged_in.returncode == 0, logged_in.stderr
    assert f"as {email}" in logged_in.stdout

    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    assert PASSWORD not in cli.credentials.read_text()

    video = cli.home / "holiday.mp4"
    video.symlink_to(media / "clip.mp4")
    done = cli("convert", str(video))
    assert done.returncode == 0, done.stderr
    mp3 = cli.home / "holiday.mp3"
    probe = ffprobe(mp3)
    assert [s["codec_name"] for s in probe["streams"]] == ["mp3"]
    assert abs(float(probe["format"]["duration"]) - 12.0) <= 0.2
    assert str(mp3) in done.stdout
    for bar in ("checksum", "upload", "convert", "download"):
        assert bar in done.stderr
    assert "100%" in done.stderr and "SUCCEEDED" in done.stderr

    table = cli("jobs")
    assert table.returncode == 0, table.stderr
    assert "holiday.mp4" in table.stdout and "succeeded" in table.stdout


def test_json_outputs_for_scripts(cli: Cli, user: str, media: Path) -> None:
    assert cli.json("whoami")["user"]["email"] == user

    queued = cli.json("upload", str(media / "clip.mp4"))["job"]
    assert queued["status"] == "JOB_STATUS_QUEUED" and queued["filename"] == "clip.mp4"

    watched = cli("watch", queued["id"], "--json")  # --json after the command works too
    assert watched.returncode == 0, watched.stderr
    updates = [json.loads(line)["job"] for line in watched.stdout.splitlines()]
    assert updates[-1]["status"] == "JOB_STATUS_SUCCEEDED"
    progress = [u["progressPercent"] for u in updates]
    assert progress == sorted(progress) and progress[-1] == 100

    status = cli.json("status", queued["id"])["job"]
    assert status == updates[-1]
    listed = cli.json("jobs")["jobs"]
    assert [j["id"] for j in listed] == [queued["id"]]

    got = cli.json("download", queued["id"], "-o", "by-job.mp3")
    assert got == {
        "fileId": status["mp3FileId"],
        "output": "by-job.mp3",
        "bytes": int(status["mp3SizeBytes"]),
    }
    by_id = cli.json("download", status["mp3FileId"])
    assert by_id["output"] == f"{status['mp3FileId']}.mp3"
    assert (cli.home / "by-job.mp3").read_bytes() == (cli.home / by_id["output"]).read_bytes()

    converted = cli.json("convert", str(media / "clip.mp4"), "-o", "again.mp3")
    assert converted["job"]["status"] == "JOB_STATUS_SUCCEEDED"
    assert converted["bytes"] == (cli.home / "again.mp3").stat().st_size > 0

    saved = cli.credentials.read_text()
    assert cli.json("logout") == {"server": cli.server, "loggedOut": True, "revoked": True}
    cli.credentials.write_text(saved)  # the token back, as someone who had copied it would
    assert "token" in one_line_error(cli("whoami")).lower()  # refused: revoked


def test_a_file_that_is_not_a_video_fails_the_job_with_its_reason(
    cli: Cli, user: str, media: Path
) -> None:
    done = cli("convert", str(media / "notes.txt"), "-o", "notes.mp3")
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "failed: the uploaded file is not a video ffmpeg can read" in done.stderr
    assert not (cli.home / "notes.mp3").exists()

    as_json = cli("--json", "convert", str(media / "notes.txt"))
    assert as_json.returncode == 3
    job = json.loads(as_json.stdout)["job"]
    assert job["status"] == "JOB_STATUS_FAILED" and "not a video" in job["error"]


def test_cancel_retry_delete_and_explain(cli: Cli, user: str, media: Path) -> None:
    """The job controls and `status --explain`, as a person and a script use them."""
    failed = cli("convert", str(media / "notes.txt"))
    assert failed.returncode == 3
    job_id = cli.json("jobs")["jobs"][0]["id"]
    explained = cli("status", "--explain", job_id)
    assert explained.returncode == 0, explained.stderr
    assert "attempt" in explained.stdout and "failed" in explained.stdout
    assert "stages" in explained.stdout and "not a video" in explained.stdout

    retried = cli("retry", job_id)
    assert retried.returncode == 0 and f"mp3mesh watch {job_id}" in retried.stdout
    assert cli("watch", job_id).returncode == 3  # fails again, the same way
    refused = one_line_error(cli("cancel", job_id))
    assert "already ended (FAILED)" in refused

    done = cli.json("convert", str(media / "clip.mp4"), "-o", "clip.mp3")["job"]
    full = cli.json("status", "--explain", done["id"])["job"]
    assert full["details"]["probe"]["container"].startswith("mov,mp4")
    shown = cli("status", "--explain", done["id"]).stdout
    assert "ffmpeg" in shown and "-i" in shown and "#1 audio: aac" in shown
    assert "succeeded" in shown

    assert cli("delete", done["id"]).returncode == 0
    assert "was deleted" in one_line_error(cli("status", done["id"]))
    assert cli.json("delete", job_id) == {"jobId": job_id, "deleted": True}


def test_errors_are_one_line_each(cli: Cli, stack: Stack, media: Path, tmp_path: Path) -> None:
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    assert "not logged in to" in one_line_error(cli("jobs"))
    first = cli("register", email)
    assert first.returncode == 0
    again = cli("register", email)  # the same answer: which emails exist is not told
    assert (again.returncode, again.stdout) == (0, first.stdout)
    assert "password must be" in one_line_error(cli("register", f"x{email}", password="short"))

    wrong = cli("login", email, password="not the password")
    assert one_line_error(wrong) == "email or password is incorrect"
    assert not cli.credentials.exists()
    failed = cli("--json", "login", email, password="not the password")
    assert json.loads(failed.stdout)["error"]["code"] == "UNAUTHENTICATED"

    assert cli("login", email).returncode == 0
    assert one_line_error(cli("convert", "no-such-video.mp4")) == "no-such-video.mp4: no such file"
    assert one_line_error(cli("upload", str(tmp_path))).endswith("not a file")
    assert "job" in one_line_error(cli("status", "0123456789abcdef01234567")).lower()
    assert one_line_error(cli("status", "not-an-id"))
    gone = cli("--server", f"127.0.0.1:{free_port()}", "jobs")
    assert "not logged in" in one_line_error(gone)  # tokens are kept per server

    # A session that expired: the stored token is past its time.
    data = json.loads(cli.credentials.read_text())
    data["sessions"][cli.server]["token"] = stack.expired_token()
    cli.credentials.write_text(json.dumps(data))
    message = one_line_error(cli("jobs"))
    assert "expired" in message and "mp3mesh login" in message

    assert cli("logout").returncode == 0
    assert "Not logged in" in cli("logout").stdout


def test_an_unreachable_server_is_named_without_a_traceback(cli: Cli) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    done = cli("--server", nowhere, "login", "someone@example.com")
    assert one_line_error(done) == (
        f"cannot reach {nowhere} (is the mesh running there? Set --server or MP3MESH_SERVER)"
    )


def test_services_reached_directly(cli: Cli, stack: Stack, media: Path) -> None:
    """--server the gateway and --auth-server auth: no Envoy in between."""
    direct = Cli(cli.home, stack.gateway_address)
    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    auth = ("--auth-server", stack.auth_address)
    assert direct(*auth, "register", email).returncode == 0
    assert direct(*auth, "login", email).returncode == 0
    assert direct.json(*auth, "jobs") == {"jobs": []}


def test_help_everywhere_and_shell_completion(cli: Cli) -> None:
    top = cli("--help")
    assert top.returncode == 0
    commands = ["register", "login", "logout", "whoami", "convert", "upload", "status", "watch"]
    commands += ["jobs", "download", "passwd", "delete-account", "cancel", "retry", "delete"]
    for name in commands:
        assert name in top.stdout
        done = cli(name, "--help")
        assert done.returncode == 0 and "Usage: mp3mesh " + name in done.stdout, done.stdout
    script = cli("--show-completion", "bash")
    assert script.returncode == 0
    assert "_MP3MESH_COMPLETE" in script.stdout and "complete " in script.stdout
    proposals = cli(
        _MP3MESH_COMPLETE="complete_bash", COMP_WORDS="mp3mesh con", COMP_CWORD="1", password=None
    )
    assert "convert" in proposals.stdout


class _Failed(grpc.RpcError):
    """What a failed call raises: its code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK])
def test_every_status_code_has_a_one_line_message(code: grpc.StatusCode) -> None:
    """Codes the mesh never sends still read as a sentence, with or without details."""
    for details in ("what the server said", ""):
        error = rpc_error(_Failed(code, details), "mesh.example:8000")
        assert error.code == code.name and error.exit_code == 1
        assert error.message and "\n" not in error.message
        assert details in error.message or code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
