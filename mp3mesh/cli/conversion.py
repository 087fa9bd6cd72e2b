"""The conversion options as command-line flags (``--bitrate 128 --mono --start 0:30``),
checked here with the mesh's own ranges (mp3mesh/core/options.py) before anything is read or
sent, so a typo fails at once with the same words the server would use.

The flags are declared once, as the parameters of :func:`build`; :func:`flags` gives them to
every command that takes them (``convert``, ``upload``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from mp3mesh.cli.errors import CliError
from mp3mesh.core import options
from mp3mesh.files.v1 import files_pb2

PANEL = "Conversion options (docs/options.md)"

Preset = Annotated[
    str,
    typer.Option(
        help="A named option set (mp3mesh presets); the flags below override its values.",
        rich_help_panel=PANEL,
    ),
]
Bitrate = Annotated[
    int,
    typer.Option(
        "--bitrate",
        help="Constant bitrate in kb/s: "
        + ", ".join(map(str, options.CBR_BITRATES_KBPS))
        + " (default 192).",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]
Vbr = Annotated[
    int | None,
    typer.Option("--vbr", help="Variable bitrate instead: LAME quality 0 (best) to 9.",
                 rich_help_panel=PANEL),
]  # fmt: skip
Mono = Annotated[
    bool | None,
    typer.Option("--mono/--stereo", help="One channel or two (default: the video's).",
                 show_default=False, rich_help_panel=PANEL),
]  # fmt: skip
SampleRate = Annotated[
    int,
    typer.Option("--sample-rate", help="22050, 32000, 44100 or 48000 Hz (default 44100).",
                 show_default=False, rich_help_panel=PANEL),
]  # fmt: skip
Start = Annotated[
    str, typer.Option(help="Trim: start at this time (seconds, mm:ss or hh:mm:ss.ms).",
                      rich_help_panel=PANEL)
]  # fmt: skip
End = Annotated[
    str, typer.Option(help="Trim: end at this time (seconds, mm:ss or hh:mm:ss.ms).",
                      rich_help_panel=PANEL)
]  # fmt: skip
Loudness = Annotated[
    float | None,
    typer.Option("--loudness", help="Normalise to this integrated loudness, -70 to -5 LUFS"
                 " (e.g. -16).", rich_help_panel=PANEL),
]  # fmt: skip
Title = Annotated[
    str, typer.Option(help="ID3 title (default: the video's title, else its file name).",
                      rich_help_panel=PANEL)
]  # fmt: skip
Artist = Annotated[str, typer.Option(help="ID3 artist.", rich_help_panel=PANEL)]
Album = Annotated[str, typer.Option(help="ID3 album.", rich_help_panel=PANEL)]
CoverAt = Annotated[
    str, typer.Option("--cover-at", help="Cover art: the video's frame at this time.",
                      rich_help_panel=PANEL)
]  # fmt: skip


def build(
    *,
    preset: Preset = "",
    bitrate: Bitrate = 0,
    vbr: Vbr = None,
    mono: Mono = None,
    sample_rate: SampleRate = 0,
    start: Start = "",
    end: End = "",
    loudness: Loudness = None,
    title: Title = "",
    artist: Artist = "",
    album: Album = "",
    cover_at: CoverAt = "",
) -> files_pb2.ConversionOptions:
    """The flags as the upload's ConversionOptions, checked (CliError names the flag's
    field and its range)."""
    chosen = files_pb2.ConversionOptions(
        preset=preset,
        bitrate_kbps=bitrate,
        channels="" if mono is None else ("mono" if mono else "stereo"),
        sample_rate_hz=sample_rate,
        start=start,
        end=end,
        title=title,
        artist=artist,
        album=album,
        cover_at=cover_at,
    )
    if vbr is not None:
        chosen.vbr_quality = vbr
    if loudness is not None:
        chosen.loudness_lufs = loudness
    try:
        options.validate(chosen)
    except options.OptionError as exc:
        raise CliError(str(exc), code="INVALID_ARGUMENT", exit_code=2) from None
    return chosen


R = TypeVar("R")
FLAGS = tuple(inspect.signature(build, eval_str=True).parameters.values())


def flags(command: Callable[..., R]) -> Callable[..., R]:
    """A command taking the conversion flags: its ``chosen`` parameter is replaced by
    :func:`build`'s, so Typer shows and parses them, and the command gets them built and
    checked as ``chosen`` (a bad value fails before the command runs, exit code 2)."""
    signature = inspect.signature(command, eval_str=True)
    own = [param for param in signature.parameters.values() if param.name != "chosen"]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> R:
        chosen = build(**{flag.name: kwargs.pop(flag.name) for flag in FLAGS})
        return command(*args, chosen=chosen, **kwargs)

    run.__signature__ = signature.replace(parameters=[*own, *FLAGS])  # type: ignore[attr-defined]
    return run
