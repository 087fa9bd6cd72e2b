"""The main job, end to end, as a person does it with the `mp3mesh` CLI: start the mesh,
register, log in, convert a generated video (upload, conversion and download with
progress bars), list the jobs, show the email. ``make demo``.

If a mesh is already running from ``make up``, the demo uses it; otherwise it starts one
with honcho from the Procfile (devstack) and stops it afterwards. The CLI talks to the mesh's Envoy
edge and keeps the demo user's token under var/demo/config, not in your own config.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

from dotenv import dotenv_values

from devstack import ROOT, make_video, start_honcho, stop_honcho
from mp3mesh.cli.client import is_serving

ENV = {k: v or "" for k, v in dotenv_values(ROOT / "stack.env").items()}
VAR = ROOT / ENV["MP3MESH_VAR"]
EMAIL, PASSWORD = "demo@example.com", "demo-password-123"
EDGE = f"127.0.0.1:{ENV['ENVOY_PORT']}"


def mesh_ready() -> bool:
    """auth and gateway serving, and Envoy's edge (the CLI's way in) ready in front of them."""
    if not (is_serving(ENV["GATEWAY_LISTEN"]) and is_serving(ENV["AUTH_LISTEN"])):
        return False
    try:
        with urllib.request.urlopen(f"http://{EDGE}/readyz", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_stack() -> subprocess.Popen[bytes] | None:
    if mesh_ready():
        print("Using the mesh that is already running.")
        return None
    VAR.mkdir(exist_ok=True)
    print(f"Starting the mesh (logs: {VAR / 'demo-stack.log'}) ...")
    stack = start_honcho(ROOT / "stack.env", VAR / "demo-stack.log")
    deadline = time.monotonic() + 90
    while not mesh_ready():
        if stack.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the mesh did not start; see {VAR / 'demo-stack.log'}")
        time.sleep(0.5)
    return stack


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
            stop_honcho(stack)
            print("Mesh stopped.")


def mp3mesh(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a person would, its output on this terminal (or captured)."""
    if not capture:
        print(f"\n$ mp3mesh {shlex.join(args)}", flush=True)
    env = {
        **os.environ,
        "MP3MESH_SERVER": EDGE,
        "MP3MESH_PASSWORD": PASSWORD,
        "XDG_CONFIG_HOME": str(VAR / "demo" / "config"),
    }
    return subprocess.run(
        [str(ROOT / ".venv/bin/mp3mesh"), *args],
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )


def run() -> None:
    out = VAR / "demo"
    out.mkdir(parents=True, exist_ok=True)
    video = out / "sample.mp4"
    make_video(video, 12, size="640x360")
    print(f"Sample video: {video} ({video.stat().st_size} bytes, 12 s)")

    # Register answers alike whether or not the account exists: a second demo run is fine.
    if mp3mesh("register", EMAIL).returncode != 0:
        sys.exit("registration failed")
    if mp3mesh("login", EMAIL).returncode != 0:
        sys.exit("login failed")
    mp3 = out / "sample.mp3"
    if mp3mesh("convert", str(video), "-o", str(mp3)).returncode != 0:
        sys.exit("the conversion failed")
    mp3mesh("jobs", "--limit", "5")

    newest = json.loads(mp3mesh("--json", "jobs", "--limit", "1", capture=True).stdout)
    msg = find_mail(newest["jobs"][0]["id"])
    for header in ("From", "To", "Subject"):
        print(f"  {header}: {msg[header]}")
    print("\n" + msg.get_content())


if __name__ == "__main__":
    main()
