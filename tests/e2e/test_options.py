"""Conversion options and presets through the real stack: given over gRPC, as query
parameters and multipart form fields on both REST edges, and by the CLI; each MP3 checked
with ffprobe (bitrate and mode, channels, sample rate, duration, tags, cover) and ffmpeg's
ebur128 filter (integrated loudness)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import imageio_ffmpeg
import jwt
import pytest
from bson import ObjectId

from devstack import PASSWORD, ROOT, Stack
from mp3mesh.cli.client import MeshClient
from mp3mesh.core import options
from mp3mesh.files.v1 import files_pb2
from tests.e2e.test_cli import Cli

pytestmark = pytest.mark.e2e

SECONDS = 6.0
# What the tests print of each MP3, for the record (docs/options.md's table).
FIGURES = ("bitrate", "mode", "channels", "rate", "duration")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of test pattern with a stereo 440 Hz tone at 48 kHz (so every option
    changes something) and a title tag of its own."""
    path = tmp_path_factory.mktemp("options") / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={SECONDS}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"),
            *("-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-metadata", "title=The Clip's Own Title", "-shortest", str(path)),
        ],
        check=True,
    )
    return path


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of an MP3: its streams, format and tags."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = json.loads(out)
    audio = next(s for s in found["streams"] if s["codec_type"] == "audio")
    return {
        "bitrate": int(audio["bit_rate"]),
        "channels": audio["channels"],
        "rate": int(audio["sample_rate"]),
        "duration": float(found["format"]["duration"]),
        "tags": {k.lower(): v for k, v in found["format"].get("tags", {}).items()},
        "pictures": [
            s
            for s in found["streams"]
            if s["codec_type"] == "video" and s.get("disposition", {}).get("attached_pic")
        ],
        # LAME writes an "Info" header into a CBR file and a "Xing" header into a VBR one.
        "mode": "VBR" if b"Xing" in path.read_bytes()[:4096] else "CBR",
    }


def loudness(path: Path) -> float:
    """Integrated loudness (LUFS) by ffmpeg's ebur128 filter: the summary's "I:"."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null",
         "-"], capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    summary = out[out.rindex("Summary:") :]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]


def convert(client: MeshClient, clip: Path, dest: Path, **chosen: Any) -> files_pb2.Job:
    """Upload over gRPC with ``chosen`` options, wait, download to ``dest``."""
    job = client.upload(clip, options=files_pb2.ConversionOptions(**chosen))
    done = client.wait(job.id, timeout=300)
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED, done.error
    client.download(done.mp3_file_id, dest)
    return done


def stored(stack: Stack, owner_id: str) -> tuple[int, int, int]:
    """What is stored of one user's uploads: videos, their chunks, jobs."""
    db = stack.mongo()[stack.env["MONGO_DB"]]
    videos = [d["_id"] for d in db["videos.files"].find({"metadata.owner_id": owner_id})]
    chunks = db["videos.chunks"].count_documents({"files_id": {"$in": videos}}) if videos else 0
    return len(videos), chunks, db["jobs"].count_documents({"owner_id": owner_id})


def owner_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sub"]


def test_default_job_is_todays_mp3(stack: Stack, clip: Path, tmp_path: Path) -> None:
    client, _ = stack.new_user()
    job = convert(client, clip, tmp_path / "a.mp3")
    seen = probe(tmp_path / "a.mp3")
    assert (seen["bitrate"], seen["rate"], seen["channels"], seen["mode"]) == (
        192000, 44100, 2, "CBR"
    )  # fmt: skip
    assert abs(seen["duration"] - SECONDS) < 0.1
    assert seen["tags"]["title"] == "The Clip's Own Title"
    assert not seen["pictures"]
    assert job.options == files_pb2.ConversionOptions()
    print("default:", {k: seen[k] for k in FIGURES})


def test_cbr_mono_rate_trim_and_tags(stack: Stack, clip: Path, tmp_path: Path) -> None:
    client, _ = stack.new_user()
    chosen: dict[str, Any] = dict(
        bitrate_kbps=128, channels="mono", sample_rate_hz=22050, start="1.5", end="0:04.5",
        title="T", artist="A", album="B", cover_at="2",
    )  # fmt: skip
    job = convert(client, clip, tmp_path / "a.mp3", **chosen)
    assert job.options == files_pb2.ConversionOptions(**chosen)
    assert client.job(job.id).options == job.options  # GetJob
    assert next(client.jobs(1)).options == job.options  # ListJobs
    seen = probe(tmp_path / "a.mp3")
    assert (seen["bitrate"], seen["rate"], seen["channels"], seen["mode"]) == (
        128000, 22050, 1, "CBR"
    )  # fmt: skip
    assert abs(seen["duration"] - 3.0) <= 0.1, seen["duration"]
    assert {k: seen["tags"].get(k) for k in ("title", "artist", "album")} == {
        "title": "T", "artist": "A", "album": "B"
    }  # fmt: skip
    assert len(seen["pictures"]) == 1 and seen["pictures"][0]["codec_name"] == "mjpeg"
    print("cbr/mono/trim:", {k: seen[k] for k in FIGURES})


def test_vbr_quality_and_48k(stack: Stack, clip: Path, tmp_path: Path) -> None:
    client, _ = stack.new_user()
    convert(client, clip, tmp_path / "a.mp3", vbr_quality=2, sample_rate_hz=48000)
    seen = probe(tmp_path / "a.mp3")
    assert (seen["mode"], seen["rate"], seen["channels"]) == ("VBR", 48000, 2)
    assert seen["bitrate"] not in {k * 1000 for k in options.CBR_BITRATES_KBPS}
    print("vbr:", {k: seen[k] for k in FIGURES})


def test_loudness_is_normalised_to_the_target(stack: Stack, clip: Path, tmp_path: Path) -> None:
    client, _ = stack.new_user()
    convert(client, clip, tmp_path / "a.mp3", loudness_lufs=-16, channels="stereo")
    convert(client, clip, tmp_path / "quiet.mp3", loudness_lufs=-30, channels="mono")
    loud, quiet = loudness(tmp_path / "a.mp3"), loudness(tmp_path / "quiet.mp3")
    assert abs(loud - -16) <= 1, loud
    assert abs(quiet - -30) <= 1, quiet
    print("loudness: -16 ->", loud, "; -30 mono ->", quiet)


def test_presets_are_listed_and_a_job_overrides_one(
    stack: Stack, clip: Path, tmp_path: Path
) -> None:
    client, _ = stack.new_user()
    listed = {p.name: p for p in client.presets()}
    assert {"default", "music-320", "podcast-mono-64", "voice-normalized"} <= set(listed)
    assert listed["podcast-mono-64"].options.bitrate_kbps == 64
    job = convert(client, clip, tmp_path / "a.mp3", preset="podcast-mono-64", bitrate_kbps=96)
    assert job.options.preset == "podcast-mono-64"
    assert (job.options.bitrate_kbps, job.options.channels) == (96, "mono")
    seen = probe(tmp_path / "a.mp3")
    assert (seen["bitrate"], seen["channels"], seen["mode"]) == (96000, 1, "CBR")
    measured = loudness(tmp_path / "a.mp3")
    assert abs(measured - -16) <= 1
    print("preset+override:", {k: seen[k] for k in FIGURES}, "LUFS", measured)


def test_a_trim_past_the_end_fails_the_job_saying_so(stack: Stack, clip: Path) -> None:
    client, _ = stack.new_user()
    job = client.upload(clip, options=files_pb2.ConversionOptions(start="0:30"))
    done = client.wait(job.id, timeout=300)
    assert done.status == files_pb2.JOB_STATUS_FAILED
    assert done.error == "start 30 s is past the end of the video, which is 6.00 s long"
    job = client.upload(clip, options=files_pb2.ConversionOptions(end="10"))
    done = client.wait(job.id, timeout=300)
    assert done.status == files_pb2.JOB_STATUS_FAILED
    assert "end 10 s is past the end of the video" in done.error


BAD = [
    ({"bitrate_kbps": 100}, "bitrate_kbps", "32, 40, 48"),
    ({"vbr_quality": 12}, "vbr_quality", "0 (best) to 9"),
    ({"channels": "quad"}, "channels", "mono, stereo"),
    ({"sample_rate_hz": 8000}, "sample_rate_hz", "22050, 32000, 44100, 48000"),
    ({"start": "soon"}, "start", "[hh:]mm:ss"),
    ({"start": "10", "end": "5"}, "end", "not after start"),
    ({"loudness_lufs": 3}, "loudness_lufs", "-70 to -5"),
    ({"preset": "loud"}, "preset", "podcast-mono-64"),
    ({"bitrate_kbps": 128, "vbr_quality": 2}, "vbr_quality", "not both"),
]


@pytest.mark.parametrize(("chosen", "field", "allowed"), BAD, ids=[b[1] for b in BAD])
def test_out_of_range_is_invalid_argument_before_anything_is_stored(
    stack: Stack, clip: Path, chosen: dict[str, Any], field: str, allowed: str
) -> None:
    client, _ = stack.new_user()
    with pytest.raises(grpc.RpcError) as exc:
        client.upload(clip, options=files_pb2.ConversionOptions(**chosen))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = exc.value.details()
    assert message.startswith(f"{field}: ") and allowed in message, message
    assert stored(stack, client.whoami().id) == (0, 0, 0)


def _rest_user(url: str) -> str:
    email = f"opt-{ObjectId()}@example.com"
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/users", json={"email": email, "password": PASSWORD}).is_success
        return http.post("/login", auth=(email, PASSWORD)).json()["token"]


def _rest_wait(http: httpx.Client, job_id: str) -> dict[str, Any]:
    with http.stream("GET", f"/v1/jobs/{job_id}:watch", timeout=300) as reply:
        lines = [json.loads(line)["job"] for line in reply.iter_lines() if line]
    return lines[-1]


@pytest.mark.parametrize("edge_name", ["envoy", "shim"])
@pytest.mark.parametrize("how", ["query", "multipart"])
def test_rest_options_by_query_and_form(
    stack: Stack, clip: Path, tmp_path: Path, edge_name: str, how: str
) -> None:
    url = stack.envoy_url if edge_name == "envoy" else stack.shim_url
    token = _rest_user(url)
    given = {"preset": "music-320", "bitrate_kbps": "64", "channels": "mono",
             "sample_rate_hz": "32000", "start": "1", "end": "3.5", "title": "Q t",
             "artist": "Ar", "album": "Al", "cover_at": "1"}  # fmt: skip
    with httpx.Client(
        base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        if how == "query":
            reply = http.post("/v1/videos", params={**given, "metadata.filename": "c.mp4"},
                              content=clip.read_bytes())  # fmt: skip
        else:  # form fields before the file; the seed's /upload path
            reply = http.post("/upload", data=given, files={"file": ("c.mp4", clip.read_bytes())})
        assert reply.status_code == 200, reply.text
        job = reply.json()["job"]
        assert job["options"] == {
            "preset": "music-320", "bitrateKbps": 64, "channels": "mono",
            "sampleRateHz": 32000, "start": "1", "end": "3.5", "title": "Q t",
            "artist": "Ar", "album": "Al", "coverAt": "1",
        }  # fmt: skip
        done = _rest_wait(http, job["id"])
        assert done["status"] == "JOB_STATUS_SUCCEEDED", done
        assert http.get(f"/v1/jobs/{job['id']}").json()["job"]["options"] == job["options"]
        (tmp_path / "a.mp3").write_bytes(http.get(f"/v1/mp3s/{done['mp3FileId']}").content)
    seen = probe(tmp_path / "a.mp3")
    assert (seen["bitrate"], seen["channels"], seen["rate"]) == (64000, 1, 32000)
    assert abs(seen["duration"] - 2.5) <= 0.1, seen["duration"]
    assert seen["tags"]["title"] == "Q t" and len(seen["pictures"]) == 1
    print(f"REST {edge_name} {how}:", {k: seen[k] for k in FIGURES})


@pytest.mark.parametrize("edge_name", ["envoy", "shim"])
@pytest.mark.parametrize(
    ("path", "params", "form", "field"),
    [
        ("/v1/videos", {"bitrate_kbps": "100"}, None, "bitrate_kbps"),
        ("/upload", {"loudness_lufs": "0"}, None, "loudness_lufs"),
        ("/upload", {}, {"sample_rate_hz": "8000"}, "sample_rate_hz"),
        ("/v1/videos", {}, {"channels": "quad"}, "channels"),
    ],
)
def test_rest_out_of_range_is_400_naming_the_field(
    stack: Stack, clip: Path, edge_name: str, path: str, params: dict, form: dict | None,
    field: str,
) -> None:  # fmt: skip
    url = stack.envoy_url if edge_name == "envoy" else stack.shim_url
    token = _rest_user(url)
    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        if form is None:
            reply = http.post(path, params=params, content=clip.read_bytes())
        else:
            reply = http.post(path, data=form, files={"file": ("c.mp4", clip.read_bytes())})
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == 3 and reply.json()["message"].startswith(f"{field}: ")
    assert stored(stack, owner_of(token)) == (0, 0, 0)


@pytest.mark.parametrize("edge_name", ["envoy", "shim"])
def test_presets_over_rest(stack: Stack, edge_name: str) -> None:
    url = stack.envoy_url if edge_name == "envoy" else stack.shim_url
    token = _rest_user(url)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        reply = http.get("/v1/presets")
    assert reply.status_code == 200
    presets = {p["name"]: p for p in reply.json()["presets"]}
    assert next(iter(presets)) == "default"
    assert presets["music-320"]["options"]["bitrateKbps"] == 320
    assert presets["voice-normalized"]["options"]["vbrQuality"] == 4


def test_cli_convert_with_flags_and_presets(stack: Stack, clip: Path, tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"127.0.0.1:{stack.env['ENVOY_PORT']}")
    email = f"cli-opt-{ObjectId()}@example.com"
    assert cli("register", email).returncode == 0
    assert cli("login", email).returncode == 0
    listed = cli.json("presets")
    assert "podcast-mono-64" in {p["name"] for p in listed["presets"]}
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip.read_bytes())
    flags = ["--preset", "podcast-mono-64", "--bitrate", "128", "--stereo", "--start", "0:01",
             "--end", "0:04", "--title", "From CLI"]  # fmt: skip
    done = cli.json("convert", str(video), *flags)
    assert done["job"]["options"]["channels"] == "stereo"
    seen = probe(Path(done["output"]))
    assert (seen["bitrate"], seen["channels"], seen["rate"]) == (128000, 2, 44100)
    assert abs(seen["duration"] - 3.0) <= 0.1 and seen["tags"]["title"] == "From CLI"
    bad = cli("convert", str(video), "--bitrate", "100")
    assert bad.returncode == 2 and "bitrate_kbps: 100 is not" in bad.stderr
    shown = cli("status", done["job"]["id"])
    assert "preset=podcast-mono-64" in shown.stdout and "bitrate_kbps=128" in shown.stdout


def test_the_options_module_names_every_rest_field() -> None:
    """The REST names (mp3mesh/core/defaults.py, rendered into Envoy's Lua) are exactly the
    fields of ConversionOptions."""
    names = {f.name for f in files_pb2.ConversionOptions.DESCRIPTOR.fields}
    assert set(options.FIELDS) == names
    assert (ROOT / "docs/options.md").is_file()
