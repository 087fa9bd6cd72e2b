"""The dev stack: the whole mesh on this machine, for the tests, bench/ and the demo.

Two ways to run it, both from the Procfile's command lines:
- under honcho (``honcho_stack``, ``start_honcho``), exactly as ``make up`` runs it: one
  process group that stops together;
- one process per service (``service_stack``), for tests and benchmarks that kill, pause
  or restart one service while the others keep running.

Ports come from ``free_port`` (devstack/ports.py), which keeps each one reserved so no
other process takes it before the server binds it. Development and test tooling: not
part of the wheel (pyproject.toml lists the packages it ships).
"""

from devstack.config import (
    AMQP_URL,
    PASSWORD,
    PG_ADMIN_URL,
    ROOT,
    SERVICE_SETTINGS,
    TEST_MAX_UPLOAD_BYTES,
    TEST_RETRY_DELAYS,
    drop_queues,
    new_signing_key,
    stack_env,
    temp_database,
    with_password,
)
from devstack.media import ffmpeg, make_long_audio_video, make_video
from devstack.memory import PeakRss
from devstack.ports import free_port
from devstack.services import FAULT_SETTINGS, SERVICES, ServiceStack, service_stack
from devstack.stack import (
    Stack,
    consumed,
    honcho_stack,
    http_ok,
    start_honcho,
    stop_honcho,
    wait_for,
)

__all__ = [
    "AMQP_URL",
    "FAULT_SETTINGS",
    "PASSWORD",
    "PG_ADMIN_URL",
    "ROOT",
    "SERVICES",
    "SERVICE_SETTINGS",
    "TEST_MAX_UPLOAD_BYTES",
    "TEST_RETRY_DELAYS",
    "PeakRss",
    "ServiceStack",
    "Stack",
    "consumed",
    "drop_queues",
    "ffmpeg",
    "free_port",
    "honcho_stack",
    "http_ok",
    "make_long_audio_video",
    "make_video",
    "new_signing_key",
    "service_stack",
    "stack_env",
    "start_honcho",
    "stop_honcho",
    "temp_database",
    "wait_for",
    "with_password",
]
