"""`mp3mesh`: the mesh from a terminal. Log in once, then convert videos with progress bars.

Every command talks gRPC through the generated stubs (mp3mesh.cli.client). By default it goes to
the Envoy edge, which carries both services' gRPC calls; ``--auth-server`` splits them
when talking to the services directly. Progress bars and messages go to stderr, results
to stdout (``--json`` for scripts). Exit codes: 0 done, 1 the call or the input failed,
2 wrong usage, 3 the conversion job failed.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import mimetypes
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import grpc
import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich import box, filesize
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from mp3mesh.cli import conversion
from mp3mesh.cli.client import MeshClient, ProgressCallback
from mp3mesh.cli.credentials import CredentialStore, Session
from mp3mesh.cli.errors import LOGIN_HINT, CliError, rpc_error
from mp3mesh.files.v1 import files_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2

DEFAULT_SERVER = "127.0.0.1:8000"  # the Envoy edge of `make up`
EXIT_JOB_FAILED = 3

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="mp3mesh",
    help="Convert videos to MP3 on an mp3mesh server: log in once, then `mp3mesh convert VIDEO`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (one object per line).")
]
OutputOption = Annotated[
    Path | None, typer.Option("-o", "--output", help="Where to write the MP3.", dir_okay=False)
]


@dataclass
class Options:
    server: str
    auth_server: str
    json: bool
    store: CredentialStore
    credentials: grpc.ChannelCredentials | None = None  # TLS; None: plaintext

    def client(self, session: Session | None = None) -> MeshClient:
        token = session.token if session else ""
        return MeshClient(self.auth_server, self.server, token=token, credentials=self.credentials)

    def session(self) -> Session:
        session = self.store.get(self.server)
        if session is None:
            raise CliError(f"not logged in to {self.server} {LOGIN_HINT}", code="NOT_LOGGED_IN")
        return session


@app.callback()
def main_options(
    ctx: typer.Context,
    server: Annotated[
        str,
        typer.Option(
            envvar="MP3MESH_SERVER", help="The mesh's gRPC address (host:port of its Envoy edge)."
        ),
    ] = DEFAULT_SERVER,
    auth_server: Annotated[
        str | None,
        typer.Option(
            envvar="MP3MESH_AUTH_SERVER",
            help="AuthService's address, when it is not --server (services reached directly).",
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(envvar="MP3MESH_TLS", help="Talk TLS to the server (an HTTPS edge)."),
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            envvar="MP3MESH_CA_FILE",
            help="Trust the server's certificate from this CA (PEM); implies --tls.",
            dir_okay=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    opts = Options(server, auth_server or server, json_output, CredentialStore())
    if tls or ca_file:
        try:
            roots = ca_file.read_bytes() if ca_file else None
        except OSError as exc:
            fail(CliError(f"{ca_file}: {exc.strerror}", code="OS_ERROR"), opts)
        opts.credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    ctx.obj = opts


P = ParamSpec("P")
R = TypeVar("R")


def command(
    *, uses_token: bool = True, group: typer.Typer | None = None, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A CLI command (taking ``ctx``): failures become one line on stderr (and a JSON
    error with --json) and an exit code, never a traceback. ``group``: a command of a
    sub-command group (``mp3mesh webhooks add``) instead of the top level."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            opts: Options = kwargs["ctx"].obj  # type: ignore[attr-defined]
            if kwargs.get("json_output"):
                opts.json = True
            try:
                return fn(*args, **kwargs)
            except grpc.RpcError as exc:
                fail(rpc_error(exc, opts.server, with_token=uses_token), opts)
            except CliError as exc:
                fail(exc, opts)
            except OSError as exc:
                where = f"{exc.filename}: " if exc.filename else ""
                fail(CliError(f"{where}{exc.strerror or exc}", code="OS_ERROR"), opts)
            except KeyboardInterrupt:
                fail(CliError("interrupted", code="CANCELLED", exit_code=130), opts)

        return (group or app).command(name)(run)

    return decorate


def fail(error: CliError, opts: Options) -> NoReturn:
    if opts.json:
        emit({"error": {"code": error.code, "message": error.message}})
    err.print(f"[red]error:[/red] {escape(error.message)}", soft_wrap=True)
    raise typer.Exit(error.exit_code)


def emit(data: object) -> None:
    print(json.dumps(data), flush=True)


def as_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping, as the REST edges answer: lowerCamelCase, defaults printed."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def password_from_env_or_prompt(confirm: bool) -> str:
    if password := os.environ.get("MP3MESH_PASSWORD"):
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True))


# --- accounts ----------------------------------------------------------------------------


@command(uses_token=False)
def register(
    ctx: typer.Context,
    email: Annotated[
        str,
        typer.Argument(metavar="EMAIL", help="Your email: you log in with it and get mail there."),
    ],
    name: Annotated[str, typer.Option(help="The name to greet you by.")] = "",
    json_output: JsonOption = False,
) -> None:
    """Create an account (password prompted, or MP3MESH_PASSWORD)."""
    opts: Options = ctx.obj
    password = password_from_env_or_prompt(confirm=True)
    with opts.client() as client:
        user = client.register(email, password, name)
    if opts.json:
        emit({"user": as_dict(user)})
    else:
        out.print(f"Registered {user.email}. Next: mp3mesh login {user.email}")


@command(uses_token=False)
def login(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email.")],
    json_output: JsonOption = False,
) -> None:
    """Log in; the token is kept in your config directory (password: prompt or
    MP3MESH_PASSWORD)."""
    opts: Options = ctx.obj
    password = password_from_env_or_prompt(confirm=False)
    with opts.client() as client:
        reply = client.login_reply(email, password)
    expires = reply.expire_time.ToJsonString()
    opts.store.put(opts.server, Session(email=email, token=reply.token, expire_time=expires))
    if opts.json:
        emit({"email": email, "server": opts.server, "expireTime": expires})
    else:
        out.print(f"Logged in to {opts.server} as {email} until {_when(reply.expire_time)}.")


@command()
def logout(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Revoke the token on the server and forget it here."""
    opts: Options = ctx.obj
    session = opts.store.get(opts.server)
    revoked = False
    if session:
        with opts.client(session) as client:
            try:
                client.logout()
                revoked = True
            except grpc.RpcError as exc:
                # Already invalid, or a server without Logout: forgetting it is all there is.
                if exc.code() not in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.UNIMPLEMENTED,
                ):
                    raise  # keep the token: the user can try again
    forgotten = opts.store.forget(opts.server)
    if opts.json:
        emit({"server": opts.server, "loggedOut": forgotten, "revoked": revoked})
    elif not forgotten:
        out.print(f"Not logged in to {opts.server}.")
    elif revoked:
        out.print(f"Logged out of {opts.server}: the token is revoked and forgotten.")
    else:
        out.print(
            f"Logged out of {opts.server}: the token is forgotten here (the server did not "
            "revoke it: it was no longer valid, or the server has no logout)."
        )


@command()
def passwd(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Change your password (the current one: prompt or MP3MESH_PASSWORD; the new one:
    prompt or MP3MESH_NEW_PASSWORD). Every other session of the account is logged out;
    this one goes on with a new token."""
    opts: Options = ctx.obj
    session = opts.session()
    current = password_from_env_or_prompt(confirm=False)
    new = os.environ.get("MP3MESH_NEW_PASSWORD") or str(
        typer.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    )
    with opts.client(session) as client:
        reply = client.change_password(current, new)
    expires = reply.expire_time.ToJsonString()
    renewed = Session(email=session.email, token=reply.token, expire_time=expires)
    opts.store.put(opts.server, renewed)
    if opts.json:
        emit({"email": session.email, "server": opts.server, "expireTime": expires})
    else:
        out.print(f"Password changed for {session.email}: your other sessions are logged out.")


@command()
def delete_account(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Delete your account (password: prompt or MP3MESH_PASSWORD); its tokens are
    refused everywhere, and the token here is forgotten."""
    opts: Options = ctx.obj
    session = opts.session()
    password = password_from_env_or_prompt(confirm=False)
    with opts.client(session) as client:
        client.delete_account(password)
    opts.store.forget(opts.server)
    if opts.json:
        emit({"email": session.email, "server": opts.server, "deleted": True})
    else:
        out.print(f"Deleted the account {session.email} on {opts.server}.")


@command()
def whoami(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the account you are logged in with."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        user = client.whoami()
    if opts.json:
        emit({"user": as_dict(user)})
    else:
        out.print(f"{user.email} on {opts.server}")


# --- jobs --------------------------------------------------------------------------------


@command()
@conversion.flags
def convert(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video file to convert.")],
    output: OutputOption = None,
    json_output: JsonOption = False,
    *,
    chosen: files_pb2.ConversionOptions,
) -> None:
    """Upload VIDEO, follow its conversion, download the MP3 (next to VIDEO unless -o)."""
    opts: Options = ctx.obj
    check_readable(video)
    dest = output or video.with_suffix(".mp3")
    if dest.resolve() == video.resolve():
        raise CliError(f"{video} is already an .mp3: give another name with -o")
    with opts.client(opts.session()) as client:
        queued = upload_with_progress(client, video, opts, chosen)
        job = follow(client, queued.id, opts)
        if job.status != files_pb2.JOB_STATUS_SUCCEEDED:
            job_failed(job, opts)
        size = download_with_progress(client, job.mp3_file_id, dest, job.mp3_size_bytes, opts)
    if opts.json:
        emit({"job": as_dict(job), "output": str(dest), "bytes": size})
    else:
        out.print(f"{dest} ({_size(size)}, {job.duration_seconds:.1f} s of audio)")


@command()
@conversion.flags
def upload(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video file to upload.")],
    json_output: JsonOption = False,
    *,
    chosen: files_pb2.ConversionOptions,
) -> None:
    """Upload VIDEO and print its job id; the conversion runs on without you."""
    opts: Options = ctx.obj
    check_readable(video)
    with opts.client(opts.session()) as client:
        job = upload_with_progress(client, video, opts, chosen)
    if opts.json:
        emit({"job": as_dict(job)})
    else:
        out.print(f"Job {job.id} queued. Follow it: mp3mesh watch {job.id}")


@command()
def status(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id (upload prints it).")],
    json_output: JsonOption = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also how the job was done: the input's probe, the ffmpeg command,"
            " each stage's time, every attempt.",
        ),
    ] = False,
) -> None:
    """Show one job."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        job = client.job(job_id, full=explain)
    if opts.json:
        emit({"job": as_dict(job)})
        return
    show_job(job)
    if explain:
        explain_job(job)


@command()
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id.")],
    json_output: JsonOption = False,
) -> None:
    """Cancel a queued or running job (its ffmpeg is stopped, nothing is kept)."""
    _control(
        ctx.obj, lambda client: client.cancel(job_id), "cancelled. Run it again: mp3mesh retry"
    )


@command()
def retry(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id.")],
    json_output: JsonOption = False,
) -> None:
    """Run a failed or cancelled job again (while its video is still kept)."""
    _control(ctx.obj, lambda client: client.retry(job_id), "queued again. Follow it: mp3mesh watch")


def _control(opts: Options, call: Callable[[MeshClient], files_pb2.Job], said: str) -> None:
    """One of the job controls: the job it answers, as JSON or as ``Job ID <said> ID``."""
    with opts.client(opts.session()) as client:
        job = call(client)
    if opts.json:
        emit({"job": as_dict(job)})
    else:
        out.print(f"Job {job.id} {said} {job.id}")


@command()
def delete(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id.")],
    json_output: JsonOption = False,
) -> None:
    """Delete a job with its video and MP3 (a running conversion is stopped)."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        client.delete(job_id)
    if opts.json:
        emit({"jobId": job_id, "deleted": True})
    else:
        out.print(f"Job {job_id} deleted, with its files.")


@command()
def watch(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id.")],
    json_output: JsonOption = False,
) -> None:
    """Follow a job until it ends (with --json: one line per change). Exit 3 if it failed."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        job = follow(client, job_id, opts, json_lines=opts.json)
    if job.status == files_pb2.JOB_STATUS_FAILED:
        job_failed(job, opts, already_printed=True)
    if not opts.json:
        show_job(job)


@command()
def jobs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=0, help="At most this many (0: all).")] = 20,
    json_output: JsonOption = False,
) -> None:
    """List your jobs, newest first."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        found = list(client.jobs(limit))
    if opts.json:
        emit({"jobs": [as_dict(job) for job in found]})
        return
    if not found:
        out.print("No jobs yet. Start one: mp3mesh convert VIDEO")
        return
    out.print(jobs_table(found, out.width))
    for job in found:
        if job.error:
            out.print(f"{job.id} failed: {escape(job.error)}", soft_wrap=True)


@command()
def presets(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the presets a conversion may name (--preset NAME)."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        found = client.presets()
    if opts.json:
        emit({"presets": [as_dict(preset) for preset in found]})
        return
    for preset in found:
        out.print(f"{preset.name:>17}  {escape(options_text(preset.options))}")
        out.print(f"{'':>17}  {escape(preset.description)}", style="dim")


@command()
def download(
    ctx: typer.Context,
    file_id: Annotated[
        str, typer.Argument(metavar="ID", help="A finished job's id, or its MP3's id.")
    ],
    output: OutputOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download an MP3 (to the video's name with .mp3 unless -o)."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        mp3_id, name, size_hint = resolve_mp3(client, file_id)
        dest = output or Path(name)
        size = download_with_progress(client, mp3_id, dest, size_hint, opts)
    if opts.json:
        emit({"fileId": mp3_id, "output": str(dest), "bytes": size})
    else:
        out.print(f"{dest} ({_size(size)})")


# --- the steps commands share ---------------------------------------------------------------


def check_readable(path: Path) -> None:
    if not path.exists():
        raise CliError(f"{path}: no such file", code="NOT_FOUND")
    if not path.is_file():
        raise CliError(f"{path}: not a file", code="INVALID_ARGUMENT")
    if path.stat().st_size == 0:
        raise CliError(f"{path}: the file is empty", code="INVALID_ARGUMENT")


@contextmanager
def byte_progress(opts: Options, *bars: tuple[str, int | None]) -> Iterator[list[ProgressCallback]]:
    """Byte bars, one per (label, total), on stderr; one callback per bar to advance it."""
    columns = (
        TextColumn("{task.description:<8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=opts.json) as progress:
        tasks = [progress.add_task(label, total=total) for label, total in bars]
        yield [functools.partial(progress.advance, task) for task in tasks]


def upload_with_progress(
    client: MeshClient,
    video: Path,
    opts: Options,
    chosen: files_pb2.ConversionOptions | None = None,
) -> files_pb2.Job:
    size = video.stat().st_size
    content_type = mimetypes.guess_type(video.name)[0] or "application/octet-stream"
    with byte_progress(opts, ("checksum", size), ("upload", size)) as (hashed, sent):
        return client.upload(
            video,
            content_type=content_type,
            on_chunk=sent,
            on_hash=hashed,
            timeout=None,
            options=chosen,
        )


def download_with_progress(
    client: MeshClient, mp3_id: str, dest: Path, size_hint: int, opts: Options
) -> int:
    with byte_progress(opts, ("download", size_hint or None)) as (received,):
        return client.download(mp3_id, dest, on_chunk=received, timeout=None)


def follow(
    client: MeshClient, job_id: str, opts: Options, *, json_lines: bool = False
) -> files_pb2.Job:
    """Watch the job to its end with a progress bar (``json_lines``: a JSON line per
    change instead); its last state."""
    columns = (
        TextColumn("convert "),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    job = None
    with Progress(*columns, console=err, disable=opts.json) as progress:
        task = progress.add_task("convert", total=100, status="")
        for job in client.watch(job_id, timeout=None):
            if json_lines:
                emit({"job": as_dict(job)})
            done = 100 if job.status == files_pb2.JOB_STATUS_SUCCEEDED else job.progress_percent
            progress.update(task, completed=done, status=_status(job))
    if job is None:
        raise CliError(f"job {job_id}: the server ended the watch without an answer")
    return job


def job_failed(job: files_pb2.Job, opts: Options, *, already_printed: bool = False) -> None:
    if opts.json and not already_printed:
        emit({"job": as_dict(job)})
    reason = escape(job.error or "no reason given")
    err.print(f"[red]error:[/red] job {job.id} failed: {reason}", soft_wrap=True)
    raise typer.Exit(EXIT_JOB_FAILED)


def resolve_mp3(client: MeshClient, file_id: str) -> tuple[str, str, int]:
    """(MP3 id, default file name, size if known) for a job id or an MP3 id."""
    try:
        job = client.job(file_id)
    except grpc.RpcError as exc:
        if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise
        return file_id, f"{file_id}.mp3", 0  # not a job of ours: an MP3 id, Download decides
    if job.status != files_pb2.JOB_STATUS_SUCCEEDED:
        reason = f": {job.error}" if job.error else ""
        raise CliError(f"job {job.id} has no MP3 (it is {_status(job)}{reason})")
    return job.mp3_file_id, f"{Path(job.filename or job.id).stem}.mp3", job.mp3_size_bytes


def jobs_table(found: list[files_pb2.Job], width: int) -> Table:
    """Ids never wrap or shorten (they are what the other commands take); file names are
    cut to the terminal's width (`status JOB` has them whole)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("job", no_wrap=True, min_width=24)
    # What the rest takes: id 24, status 9, created 11, mp3 size 8, edges and gaps 14.
    file_width = min(40, max(8, width - 66))
    table.add_column("file", no_wrap=True, overflow="ellipsis", max_width=file_width)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("mp3", justify="right", no_wrap=True)
    for job in found:
        state = _status(job).lower()
        if job.status == files_pb2.JOB_STATUS_PROCESSING:
            state = f"{job.progress_percent}%"
        mp3 = _size(job.mp3_size_bytes) if job.mp3_file_id else ""
        table.add_row(
            job.id, escape(job.filename), state, _when(job.create_time, "%m-%d %H:%M"), mp3
        )
    return table


def show_job(job: files_pb2.Job) -> None:
    rows = [
        ("job", job.id),
        ("file", job.filename),
        ("status", _status(job)),
        ("progress", f"{job.progress_percent}%"),
        ("created", _when(job.create_time)),
        ("updated", _when(job.update_time)),
        ("attempts", str(job.attempts)),
    ]
    if job.mp3_file_id:
        mp3 = f"{job.mp3_file_id} ({_size(job.mp3_size_bytes)}, {job.duration_seconds:.1f} s)"
        rows.append(("mp3", mp3))
    if job.HasField("options") and job.options.ByteSize():
        rows.append(("options", options_text(job.options)))
    if job.error:
        rows.append(("error", job.error))
    for delivery in job.webhook_deliveries:  # docs/webhooks.md
        state = webhooks_pb2.WebhookDeliveryState.Name(delivery.state)
        line = (
            f"{delivery.event_type} to {delivery.webhook_id}:"
            f" {state.removeprefix('WEBHOOK_DELIVERY_STATE_')}, {delivery.attempts} tries"
        )
        if delivery.last_status_code:
            line += f", last answer {delivery.last_status_code}"
        if delivery.last_error:
            line += f" ({delivery.last_error})"
        rows.append(("webhook", line))
    for key, value in rows:
        out.print(f"{key:>9}  {escape(value)}")


def options_text(chosen: files_pb2.ConversionOptions) -> str:
    """The options set, as their REST names: "preset=podcast-mono-64 bitrate_kbps=128"."""
    fields = json_format.MessageToDict(chosen, preserving_proto_field_name=True)
    return " ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                    for name, value in fields.items())  # fmt: skip


def explain_job(job: files_pb2.Job) -> None:
    """How the job was done (GetJob's full view), after show_job's rows."""
    probe = job.details.probe
    if probe.container:
        rate = f", {probe.bit_rate_bps // 1000} kb/s" if probe.bit_rate_bps else ""
        out.print(f"{'input':>9}  {escape(probe.container)}, {probe.duration_seconds:.2f} s{rate}")
        for stream in probe.streams:
            detail = [stream.codec]
            if stream.sample_rate_hz:
                detail.append(f"{stream.sample_rate_hz} Hz")
            if stream.channel_layout:
                detail.append(stream.channel_layout)
            if stream.bit_rate_bps:
                detail.append(f"{stream.bit_rate_bps // 1000} kb/s")
            out.print(f"{'':>9}  #{stream.index} {stream.type}: {escape(', '.join(detail))}")
    if job.details.ffmpeg_args:
        out.print(f"{'ffmpeg':>9}  {escape(shlex.join(job.details.ffmpeg_args))}", soft_wrap=True)
    times = job.details.stage_times
    stages = [(name, getattr(times, f"{name}_seconds")) for name in
              ("queued", "fetch", "convert", "store", "announce")]  # fmt: skip
    if any(seconds for _, seconds in stages):
        out.print(f"{'stages':>9}  " + ", ".join(f"{n} {s:.2f} s" for n, s in stages))
    for attempt in job.details.attempt_history:
        reason = f": {attempt.reason}" if attempt.reason else ""
        where = f" on {attempt.converter}" if attempt.converter else ""
        line = f"#{attempt.number} {_when(attempt.start_time)}{where}, {attempt.outcome}{reason}"
        out.print(f"{'attempt':>9}  {escape(line)}", soft_wrap=True)


def _status(job: files_pb2.Job) -> str:
    return files_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_")


def _when(stamp: Any, layout: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp in local time; empty when unset."""
    if not stamp.seconds:
        return ""
    return str(stamp.ToDatetime(tzinfo=dt.UTC).astimezone().strftime(layout))


def _size(n: int) -> str:
    return str(filesize.decimal(n))


def main() -> None:
    app()


webhooks_app = typer.Typer(
    help="Your webhooks: URLs told, signed, when a job of yours ends (docs/webhooks.md).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


@command(group=webhooks_app, name="add")
def webhooks_add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST events (https).")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            "-e",
            help="job.succeeded, job.failed, job.cancelled (repeat or comma-separate);"
            " default: all.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Register a webhook; prints its signing secret, shown this once."""
    opts: Options = ctx.obj
    wanted = [e.strip() for item in events or [] for e in item.split(",") if e.strip()]
    with opts.client(opts.session()) as client:
        hook = client.create_webhook(url, wanted)
    if opts.json:
        emit({"webhook": as_dict(hook)})
        return
    out.print(f"Webhook {hook.id} registered for {', '.join(hook.events)}: {escape(hook.url)}")
    out.print(f"Signing secret (shown this once, keep it safe): {hook.secret}", soft_wrap=True)


@command(group=webhooks_app, name="list")
def webhooks_list(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List your webhooks."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        hooks = client.list_webhooks()
    if opts.json:
        emit({"webhooks": [as_dict(hook) for hook in hooks]})
        return
    if not hooks:
        out.print("No webhooks yet. Add one: mp3mesh webhooks add URL")
        return
    for hook in hooks:
        state = f"disabled: {hook.disabled_reason}" if hook.disabled else "active"
        line = f"{hook.id}  {escape(hook.url)}  {','.join(hook.events)}  {escape(state)}"
        out.print(line, soft_wrap=True)


@command(group=webhooks_app, name="delete")
def webhooks_delete(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID", help="The webhook's id.")],
    json_output: JsonOption = False,
) -> None:
    """Delete a webhook; events not yet delivered to it are dropped."""
    opts: Options = ctx.obj
    with opts.client(opts.session()) as client:
        client.delete_webhook(webhook_id)
    if opts.json:
        emit({"deleted": webhook_id})
        return
    out.print(f"Webhook {webhook_id} deleted.")
