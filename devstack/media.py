"""Sample videos made with ffmpeg, for the tests, the benchmarks and the demo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def make_video(
    path: Path,
    seconds: float,
    *,
    audio: bool = True,
    size: str = "320x240",
    bitrate: str = "",
    noise: bool = False,
) -> Path:
    """A test pattern video, with a 440 Hz tone unless audio=False. Noise on the picture
    makes the encoder spend the whole bitrate, for files of a predictable size."""
    picture = f"testsrc2=size={size}:rate=25:duration={seconds}"
    args = ["-f", "lavfi", "-i", picture + (",noise=alls=30:allf=t" if noise else "")]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:a",
            "aac",
        ]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if bitrate:
        args += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    ffmpeg(*args, str(path))
    return path


def make_long_audio_video(path: Path, seconds: int) -> Path:
    """Long stereo audio behind a 16x16 picture at 1 frame/s: 40 minutes is 19 MB, made in
    under a second (ADPCM), and keeps the converter's ffmpeg busy for about 10 s."""
    # fmt: off
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c=black:size=16x16:rate=1:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=8000:duration={seconds}",
        "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "adpcm_ima_wav",
        str(path),
    )
    # fmt: on
    return path
