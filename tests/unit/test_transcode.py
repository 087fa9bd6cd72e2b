"""The converter without services: ffmpeg on real files, MP3 names, the work dir sweep."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mp3mesh.converter.handler import (
    mp3_name,
    sweep_work_dir,
    work_dir_prefix,
)
from mp3mesh.converter.transcode import (
    MP3_DEMUXER,
    Deadline,
    Interrupted,
    Transcoder,
    Unconvertible,
    probe,
)


def test_extract_mp3_keeps_the_duration_and_reports_progress(media: Path, tmp_path: Path) -> None:
    progress: list[float] = []
    info = Transcoder().extract_mp3(
        media / "clip.mp4", tmp_path / "a.mp3", 128, 44100, on_progress=progress.append
    )
    assert info.has_audio and not info.has_video and abs(info.duration - 12) < 0.2
    assert probe(tmp_path / "a.mp3", MP3_DEMUXER).duration == info.duration
    assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)


def test_ffmpeg_past_its_deadline_is_interrupted_not_unconvertible(
    media: Path, tmp_path: Path
) -> None:
    """Our own timeout is transient: the job is retried, not failed for good."""
    with pytest.raises(Interrupted, match="deadline"):
        Transcoder(Deadline(base_seconds=0, per_media_second=0)).extract_mp3(
            media / "clip.mp4", tmp_path / "a.mp3", 128, 44100
        )


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("clip.mp4", "clip.mp3"), ("/", "audio.mp3"), (".", "audio.mp3"), ("a/b.mov", "b.mp3")],
)
def test_mp3_names_come_from_any_upload_name(filename: str, expected: str) -> None:
    assert mp3_name(filename) == expected


@pytest.mark.parametrize(
    ("name", "needle"), [("notes.txt", "not a video"), ("silent.mp4", "no audio track")]
)
def test_unconvertible_inputs_say_why(media: Path, tmp_path: Path, name: str, needle: str) -> None:
    # No extension, as in the converter: ffmpeg must judge the content, not the name.
    source = tmp_path / "video"
    source.write_bytes((media / name).read_bytes())
    with pytest.raises(Unconvertible, match=needle):
        Transcoder().extract_mp3(source, tmp_path / "a.mp3", 128, 44100)
    assert not (tmp_path / "a.mp3").exists()


def test_startup_sweep_removes_only_dead_converters_temp_dirs(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f"{work_dir_prefix(gone.pid)}abc"
    alive = tmp_path / f"{work_dir_prefix()}def"
    for d in (dead, alive):
        d.mkdir()
        (d / "video").write_bytes(b"x" * 1000)
    assert sweep_work_dir(str(tmp_path)) == [dead]
    assert not dead.exists() and alive.exists()
