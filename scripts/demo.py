"""The main job, end to end: start the mesh, register, log in, upload a generated video,
follow the job, download the MP3, show the email. ``make demo``.

If a mesh is already running from ``make up``, the demo uses it; otherwise it starts one
with honcho from the Procfile and stops it afterwards.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
from dotenv import dotenv_values
from tqdm import tqdm

from cli.client import MeshClient, is_serving
from mp3mesh.files.v1 import files_pb2

ROOT = Path(__file__).resolve().parent.parent

ENV = {k: v or "" for k, v in dotenv_values(ROOT / "stack.env").items()}
VAR = ROOT / ENV["MP3MESH_VAR"]
EMAIL, PASSWORD = "demo@example.com", "demo-password-123"


def start_stack() -> subprocess.Popen[bytes] | None:
    if is_serving(ENV["GATEWAY_LISTEN"]) and is_serving(ENV["AUTH_LISTEN"]):
        print("Using the mesh that is already running.")
        return None
    VAR.mkdir(exist_ok=True)
    log = (VAR / "demo-stack.log").open("wb")
    print(f"Starting the mesh (logs: {VAR / 'demo-stack.log'}) ...")
    stack = subprocess.Popen(
        ["honcho", "-e", "stack.env", "start"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"},
    )
    deadline = time.monotonic() + 90
    while not (is_serving(ENV["GATEWAY_LISTEN"]) and is_serving(ENV["AUTH_LISTEN"])):
        if stack.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the mesh did not start; see {VAR / 'demo-stack.log'}")
        time.sleep(0.5)
    return stack


def make_sample(path: Path, seconds: int = 12) -> None:
    """A test pattern with a 440 Hz tone, made by ffmpeg."""
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=640x360:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )


def find_mail(job_id: str, timeout: float = 60) -> email.message.EmailMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (VAR / "mail" / "new").glob("*"):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if msg["X-Mp3mesh-Job"] == job_id:
                print(f"\nThe email ({path}):")
                return msg
        time.sleep(0.5)
    sys.exit(f"no email for job {job_id} arrived within {timeout:.0f} s")


def main() -> None:
    stack = start_stack()
    try:
        run()
    finally:
        if stack is not None:
            stack.terminate()
            stack.wait(30)
            print("Mesh stopped.")


def run() -> None:
    out = VAR / "demo"
    out.mkdir(parents=True, exist_ok=True)
    video = out / "sample.mp4"
    make_sample(video)
    print(f"Sample video: {video} ({video.stat().st_size} bytes, 12 s)")

    client = MeshClient(ENV["AUTH_LISTEN"], ENV["GATEWAY_LISTEN"])
    client.register(EMAIL, PASSWORD)  # answers alike whether or not it existed
    print(f"Registered {EMAIL}")
    client.login(EMAIL, PASSWORD)
    print("Logged in.")

    with tqdm(total=video.stat().st_size, unit="B", unit_scale=True, desc="upload") as bar:
        queued = client.upload(video, on_chunk=bar.update)
    print(f"Job {queued.id} queued.")

    with tqdm(total=100, desc="convert", unit="%") as bar:
        for job in client.watch(queued.id, timeout=300):
            bar.update(job.progress_percent - bar.n)
            bar.set_postfix_str(files_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_"))
    if job.status != files_pb2.JOB_STATUS_SUCCEEDED:
        sys.exit(f"job failed: {job.error}")

    mp3 = out / f"{job.id}.mp3"
    size = client.download(job.mp3_file_id, mp3)
    print(f"\nMP3: {mp3} ({size} bytes, {job.duration_seconds:.2f} s)")

    msg = find_mail(job.id)
    for header in ("From", "To", "Subject"):
        print(f"  {header}: {msg[header]}")
    print("\n" + msg.get_content())
    client.close()


if __name__ == "__main__":
    main()
