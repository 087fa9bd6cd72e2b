"""Bounded media: a small file that declares, or holds, hours of audio cannot fill the
converter's work volume, and ffmpeg opens no playlist, script or URL.

The hostile files are made with ffmpeg itself:

- ``sixty_hours.mkv`` (under 1 MB): one 16x16 MJPEG frame and 60 h of real audio, FLAC
  silence at 8 kHz in blocks of 65535 samples (a few bytes each): one hour is encoded
  once, then looped 60 times into Matroska by stream copy (``-stream_loop 59 -c:a
  copy``). It declares its true length, 60 h; as MP3 at 192 kb/s it would be 5.2 GB.
- ``says_ten_seconds.mkv``: the same file with the Matroska Segment ``Duration`` element
  (EBML id 0x4489, an 8-byte float in milliseconds) rewritten to 10 000: ffmpeg then
  reports 10 s, and would still decode 60 h.
- a concat script (naming the 60 h file beside it) and an HLS playlist, named ``.mp4``.
"""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

import pytest

from devstack import Stack, ffmpeg
from mp3mesh.converter.transcode import MAX_MEDIA_SECONDS, Transcoder, Unconvertible
from mp3mesh.files.v1 import files_pb2

FFMPEG_EXE = __import__("imageio_ffmpeg").get_ffmpeg_exe()
MKV_DURATION = b"\x44\x89\x88"  # Segment Info Duration, 8-byte float


def sixty_hours(directory: Path) -> Path:
    hour = directory / "hour.flac"
    # fmt: off
    ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3600",
        "-c:a", "flac", "-frame_size", "65535", "-compression_level", "0", str(hour),
    )
    out = directory / "sixty_hours.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:size=16x16:rate=1:duration=1",
        "-stream_loop", "59", "-i", str(hour), "-c:v", "mjpeg", "-c:a", "copy", str(out),
    )
    # fmt: on
    return out


def declaring(source: Path, seconds: float, out: Path) -> Path:
    data = bytearray(source.read_bytes())
    at = data.find(MKV_DURATION)
    assert at > 0, "no Segment Duration element"
    struct.pack_into(">d", data, at + len(MKV_DURATION), seconds * 1000)
    out.write_bytes(data)
    return out


def declared_seconds(path: Path) -> float:
    """The duration ffmpeg reports for ``path`` (``Duration: HH:MM:SS.ss``)."""
    text = subprocess.run(
        [FFMPEG_EXE, "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr
    hours, minutes, seconds = text.split("Duration: ", 1)[1].split(",", 1)[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    long = sixty_hours(d)
    (d / "concat.mp4").write_text("ffconcat version 1.0\nfile sixty_hours.mkv\n")
    (d / "playlist.mp4").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/hostname\n#EXT-X-ENDLIST\n"
    )
    return {
        "long": long,
        "lying": declaring(long, 10, d / "says_ten_seconds.mkv"),
        "concat": d / "concat.mp4",
        "playlist": d / "playlist.mp4",
    }


def test_the_hostile_files_are_what_they_claim(hostile: dict[str, Path]) -> None:
    assert hostile["long"].stat().st_size < 2**20
    assert declared_seconds(hostile["long"]) == 60 * 3600
    assert declared_seconds(hostile["lying"]) == 10
    # Without the guards ffmpeg follows the concat script (the door this closes).
    opened = subprocess.run(
        [FFMPEG_EXE, "-hide_banner", "-i", str(hostile["concat"])],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    assert "Input #0, concat" in opened


def test_a_video_declaring_60_hours_is_refused_before_ffmpeg_runs(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(Unconvertible) as exc:
        Transcoder().extract_mp3(hostile["long"], tmp_path / "a.mp3", 192, 44100)
    print(f"\n60 h declared: refused in {time.monotonic() - started:.2f} s: {exc.value}")
    assert str(exc.value) == (
        f"the video is 60.0 h long; at most {MAX_MEDIA_SECONDS / 3600:.1f} h of media is converted"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_video_lying_about_its_length_is_cut_and_refused(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    """Declares 10 s, holds 60 h: ffmpeg stops at 10 s x 1.02 + 2 s of MP3 (-t, -fs),
    the job is refused, and nothing of it stays."""
    started = time.monotonic()
    with pytest.raises(Unconvertible) as exc:
        Transcoder().extract_mp3(hostile["lying"], tmp_path / "a.mp3", 192, 44100)
    print(f"\n10 s declared, 60 h held: refused in {time.monotonic() - started:.2f} s: {exc.value}")
    assert "runs longer than the 10 s it declares (cut at 12 s)" in str(exc.value)
    assert not (tmp_path / "a.mp3").exists()


@pytest.mark.parametrize("name", ["concat", "playlist"])
def test_playlists_and_scripts_are_not_opened(
    hostile: dict[str, Path], tmp_path: Path, name: str
) -> None:
    with pytest.raises(Unconvertible) as exc:
        Transcoder().extract_mp3(hostile[name], tmp_path / "a.mp3", 192, 44100)
    assert "a playlist or script rather than a video" in str(exc.value)


@pytest.mark.parametrize("name", ["long", "lying"])
def test_the_job_fails_quickly_with_its_reason_and_fills_nothing(
    stack: Stack, hostile: dict[str, Path], name: str
) -> None:
    client, _ = stack.new_user()
    mp3s_before = _stored_mp3s(stack)
    started = time.monotonic()
    job = client.upload(hostile[name], content_type="video/x-matroska")
    done = client.wait(job.id, timeout=300)
    took = time.monotonic() - started
    print(f"\n{hostile[name].name}: {files_pb2.JobStatus.Name(done.status)} in {took:.1f} s")
    assert done.status == files_pb2.JOB_STATUS_FAILED, done
    assert ("60.0 h long" if name == "long" else "runs longer than") in done.error
    assert done.mp3_file_id == "" and done.attempts == 1
    assert list(Path(stack.env["WORK_DIR"]).iterdir()) == [], "converter left files"
    assert _stored_mp3s(stack) == mp3s_before


def _stored_mp3s(stack: Stack) -> int:
    with stack.mongo() as mongo:
        return len(list(mongo[stack.env["MONGO_DB"]]["mp3s.files"].find({}, {"_id": 1})))
