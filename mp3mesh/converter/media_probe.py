"""What the converter's one probe of a video (``ffmpeg -i``) says, as a record for the job's
full view: container, duration, bitrate and each stream's type, codec, sample rate and
channel layout.

The converter's ffmpeg comes from imageio-ffmpeg, which ships no ffprobe, and it already
runs ``ffmpeg -i`` once to judge the input (mp3mesh/converter/transcode.py ``probe``): this reads
the same report instead of running a second program. Lines it does not understand are
skipped; a field it cannot read stays empty.
"""

from __future__ import annotations

import re
from typing import Any

_INPUT = re.compile(r"^Input #0, (?P<container>[^ ]+), from ")
_DURATION = re.compile(
    r"^\s*Duration: (?:(?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)|N/A)"
    r"(?:, start: [-\d.]+)?(?:, bitrate: (?P<kbps>\d+) kb/s)?"
)
_STREAM = re.compile(r"^\s*Stream #0:(?P<index>\d+)\S*: (?P<type>\w+): (?P<rest>.*)$")
_RATE = re.compile(r"(?P<hz>\d+) Hz")
_BITRATE = re.compile(r"(?P<kbps>\d+) kb/s")


def describe(report: str) -> dict[str, Any]:
    """The first input of an ``ffmpeg -i`` report (its stderr) as a plain document."""
    info: dict[str, Any] = {"container": "", "duration": 0.0, "bit_rate": 0, "streams": []}
    for line in report.splitlines():
        if match := _INPUT.match(line):
            info["container"] = match["container"]
        elif match := _DURATION.match(line):
            if match["h"] is not None:
                info["duration"] = round(
                    int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"]), 3
                )
            if match["kbps"]:
                info["bit_rate"] = int(match["kbps"]) * 1000
        elif match := _STREAM.match(line):
            info["streams"].append(_stream(int(match["index"]), match["type"], match["rest"]))
    return info


def _stream(index: int, kind: str, rest: str) -> dict[str, Any]:
    """One ``Stream #0:N: Audio: aac (LC) (mp4a / ...), 44100 Hz, stereo, fltp, 128 kb/s``
    line, after its type."""
    parts = [part.strip() for part in rest.split(",")]
    stream: dict[str, Any] = {
        "index": index,
        "type": kind.lower(),
        "codec": parts[0].split(" ", 1)[0] if parts else "",
    }
    if kbps := _BITRATE.search(rest):
        stream["bit_rate"] = int(kbps["kbps"]) * 1000
    if stream["type"] == "audio":
        if hz := _RATE.search(rest):
            stream["sample_rate"] = int(hz["hz"])
            position = next(i for i, part in enumerate(parts) if part.endswith(" Hz"))
            if position + 1 < len(parts):
                stream["channel_layout"] = parts[position + 1]
    return stream
