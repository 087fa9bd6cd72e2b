"""What the tests share besides the stack (devstack): tokens signed for a test, waiting
for a condition, ffprobe, Envoy's renderer and the environment each process reads."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.config import ROOT, SERVICE_SETTINGS
from meshcore.settings import env_names
from meshcore.tokens import key_id


def envoy_renderer() -> ModuleType:
    """envoy/render.py, loaded by path: it is a script (envoy/ is no package)."""
    name = "mp3mesh_envoy_render"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "envoy/render.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def service_env_names() -> dict[str, set[str]]:
    """The environment variables each process of the mesh reads, Envoy included: what a
    deployment (stack.env, the tests' stack, Kubernetes manifests) may set for it."""
    names = {service: env_names(cls) for service, cls in SERVICE_SETTINGS.items()}
    names["envoy"] = set(envoy_renderer().ENV_NAMES)
    return names


def sign_token(claims: dict[str, Any], key: Ed25519PrivateKey, **headers: Any) -> str:
    """``claims`` signed with ``key``, naming it (``kid``) unless ``headers`` say otherwise."""
    headers = {"kid": key_id(key.public_key()), **headers}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


def ffprobe(path: Path) -> dict:
    """ffprobe's streams (codec name and type) and duration of a media file."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type:format=duration",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)
