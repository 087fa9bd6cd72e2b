"""Nothing secret in the logs: a whole session through both edges and the gRPC client
(register, failed and good logins, upload, conversion, mail, download, logout), then
every line the stack wrote (all services, Envoy's access log, the shim's) is searched
for the password, the tokens, the Basic credentials and the JWT key."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devstack import Stack
from mp3mesh.auth.tokens import private_pem

# Distinctive, so a match can only be a leak.
SECRET_PASSWORD = f"pw-{uuid.uuid4().hex}-never-logged"


@pytest.mark.e2e
def test_no_password_token_or_key_in_a_full_run_of_logs(
    stack: Stack, media: Path, tmp_path: Path
) -> None:
    email = f"secret-{uuid.uuid4().hex[:12]}@example.com"
    tokens = []
    for url in (stack.envoy_url, stack.shim_url):
        with httpx.Client(base_url=url, timeout=120) as http:
            http.post("/register", json={"username": email, "password": SECRET_PASSWORD})
            assert http.post("/login", auth=(email, SECRET_PASSWORD + "x")).status_code == 401
            login = http.post("/v1/sessions", json={"email": email, "password": SECRET_PASSWORD})
            tokens.append(login.json()["token"])
            tokens.append(http.post("/login", auth=(email, SECRET_PASSWORD)).json()["token"])
    client = stack.client()
    client.login(email, SECRET_PASSWORD)
    tokens.append(client.token)
    job = client.wait(client.upload(media / "clip.mp4").id, timeout=300)
    client.download(job.mp3_file_id, tmp_path / "out.mp3")
    stack.wait_for_mail(job.id)
    for url, token in ((stack.envoy_url, tokens[0]), (stack.shim_url, tokens[2])):
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/v1/jobs", headers=bearer, timeout=60).status_code == 200
        assert httpx.post(f"{url}/logout", headers=bearer, timeout=60).status_code == 200
        assert httpx.get(f"{url}/v1/users/me", headers=bearer, timeout=60).status_code == 401
    client.logout()
    time.sleep(2)  # Envoy flushes its access log every second

    logs = stack.log.read_text(errors="replace")
    assert "logged out" in logs and '"path":"/logout"' in logs  # the run was logged
    basic = base64.b64encode(f"{email}:{SECRET_PASSWORD}".encode()).decode()
    secrets = {
        "password": SECRET_PASSWORD,
        "Basic credentials": basic,
        "JWT signing key": private_pem(stack.signing_key).decode().splitlines()[1],
        **{f"token {i}": token for i, token in enumerate(tokens)},
        # A token's signature alone is as good as the token for a forger to look for.
        **{f"token {i} signature": token.rsplit(".", 1)[1] for i, token in enumerate(tokens)},
    }
    leaked = [what for what, value in secrets.items() if value in logs]
    assert not leaked, f"in the stack's log: {leaked}"
