"""compose.yaml, run for real with podman-compose (`make compose-check`, part of `make test`).

The mesh's images are built from the repo's Dockerfile (`make images`, tagged for this
run), the infrastructure's official images are swapped for stand-ins built here
(scripts/compose_standins.sh: no image registry is reachable from these machines), and
tests/compose/override.yaml puts every container into one network namespace this test
makes, with the service names mapped to 127.0.0.1: all traffic stays on that namespace's
loopback, none on podman's bridge. Then `podman-compose up -d` as a person runs it, and
through Envoy a user registers, logs in, uploads a video, waits for the job, downloads the
MP3 and gets the mail in Mailpit; every healthcheck of compose.yaml passes in its
container; `podman-compose down -v` leaves no container, pod, volume or network behind.

podman 4.3 has no `wait --condition=healthy`: podman-compose (1.3+) then starts each
service once its dependencies run, without waiting for their healthchecks (it says so),
and the services' own retries (a minute for the broker and PostgreSQL) and
`restart: on-failure` bring the mesh up in order anyway. Docker Compose and podman 4.6+
honour the `service_healthy` conditions as written.

Names of everything this test makes start with `mp3mesh-compose-` and carry this run's id,
so runs on one machine never meet. The tests without podman (compose.yaml against the k8s
overlays and the settings) run in every `make test`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from devstack import ROOT, SERVICE_SETTINGS, make_video, wait_for
from mp3mesh.core.settings import env_names
from tests.helpers import ffprobe, service_env_names
from tests.k8s.test_k8s_smoke import CONTAINERS_CONF, curl, in_netns, podman

COMPOSE_FILE = ROOT / "compose.yaml"
OVERRIDE_FILE = ROOT / "tests/compose/override.yaml"
PODMAN_COMPOSE = ROOT / ".venv/bin/podman-compose"
INFRASTRUCTURE = {
    "postgres": "postgres",
    "rabbitmq": "rabbitmq",
    "mongo": "mongo",
    "mailpit": "axllent/mailpit",
}
MESH = ["auth", "gateway", "converter", "notification", "shim", "envoy"]
EDGE = "http://127.0.0.1:8000"
MAILPIT = "http://127.0.0.1:8025"


def compose_check(test: Callable[..., None]) -> Callable[..., None]:
    """The tests that build things (images, containers, Go programs): `make compose-check`
    and `make test` (MP3MESH_COMPOSE=1)."""
    for mark in (
        pytest.mark.compose,
        pytest.mark.timeout(1800),  # the first test's setup builds the images
        pytest.mark.skipif(
            os.environ.get("MP3MESH_COMPOSE") != "1",
            reason="builds images and runs containers: make compose-check (MP3MESH_COMPOSE=1)",
        ),
    ):
        test = mark(test)
    return test


def load(path: Path) -> dict[str, Any]:
    """A compose file as podman-compose reads it, its tags !reset (to nothing) and
    !override (to what follows) applied."""

    class Loader(yaml.SafeLoader):
        pass

    def override(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)  # type: ignore[arg-type]

    Loader.add_constructor("!reset", lambda loader, node: None)
    Loader.add_constructor("!override", override)
    return yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass


def rendered_dev_images() -> dict[str, str]:
    """The infrastructure images the k8s dev overlay pins, as name -> tag."""
    text = (ROOT / "k8s/overlays/dev/kustomization.yaml").read_text()
    return {i["name"]: i["newTag"] for i in yaml.safe_load(text)["images"]}


# --- compose.yaml against the rest of the repo (no podman) ------------------------------


def test_the_infrastructure_runs_the_images_the_dev_overlay_pins() -> None:
    services = load(COMPOSE_FILE)["services"]
    pins = rendered_dev_images()
    for service, name in INFRASTRUCTURE.items():
        repository, tag = services[service]["image"].rsplit(":", 1)
        assert repository in (f"docker.io/{name}", f"docker.io/library/{name}"), service
        assert tag == pins[name], (service, tag, pins[name])


def test_the_mesh_images_carry_the_tag_of_its_one_home() -> None:
    tag = subprocess.run(
        [ROOT / "scripts/image_tag.sh"], check=True, capture_output=True, text=True
    ).stdout.strip()
    services = load(COMPOSE_FILE)["services"]
    for service in MESH:
        image = services[service]["image"]
        name = "mp3mesh-envoy" if service == "envoy" else "mp3mesh"
        assert image == f"localhost/{name}:${{MP3MESH_TAG:-{tag}}}", (service, image)
        assert services[service]["build"]["target"] == ("envoy" if service == "envoy" else "mesh")


def test_every_service_is_health_checked_and_waited_for_healthy() -> None:
    services = load(COMPOSE_FILE)["services"]
    assert set(services) == {*INFRASTRUCTURE, *MESH}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert dependency in services, (name, dependency)


def test_the_mesh_services_set_only_variables_something_reads() -> None:
    readers = set().union(*service_env_names().values())
    services = load(COMPOSE_FILE)["services"]
    for service in MESH:
        unread = set(services[service]["environment"]) - readers
        assert not unread, (service, sorted(unread))


def test_no_password_has_a_default() -> None:
    """compose refuses to start without the secrets (`${VAR:?...}`), as the dev overlay
    refuses to render without its secrets.env; nothing in the file works as a password."""
    text = COMPOSE_FILE.read_text()
    for variable in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "JWT_SIGNING_KEY_PATH"):
        uses = text.count("${" + variable)
        assert uses and uses == text.count("${" + variable + ":?"), variable
    assert "guest" not in text


@pytest.mark.parametrize("service", ["auth", "gateway", "notification", "shim"])
def test_production_mode_refuses_to_run_with_these_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose.yaml is for development: switched to MP3MESH_ENV=production, each service
    that guards something refuses to start (plaintext gRPC between the services,
    plaintext SMTP to another host) instead of running as configured here."""
    settings = SERVICE_SETTINGS[service]
    for variable in env_names(settings):
        monkeypatch.delenv(variable, raising=False)
    environment = load(COMPOSE_FILE)["services"][service]["environment"]
    for variable, value in {**environment, "MP3MESH_ENV": "production"}.items():
        monkeypatch.setenv(variable, str(value))
    with pytest.raises(
        ValidationError,
        match=r"refuses plaintext gRPC|SMTP_TLS must be starttls or ssl in production",
    ):
        settings()


def test_the_override_swaps_images_and_the_network_only() -> None:
    allowed = {"image", "network_mode", "extra_hosts", "ports", "healthcheck"}
    services = load(OVERRIDE_FILE)["services"]
    assert set(services) == set(load(COMPOSE_FILE)["services"])
    for name, service in services.items():
        assert set(service) <= allowed, (name, set(service) - allowed)
        assert service["network_mode"] == "host", name
        if "image" in service:
            assert service["image"] == f"localhost/mp3mesh-compose-{name}:standin", name
        if "healthcheck" in service:
            assert name == "mongo", name  # the stand-in has no mongosh


# --- compose.yaml as Docker Compose reads it (compose-go) -------------------------------

SECRET_VARIABLES = ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "JWT_SIGNING_KEY_PATH")


def docker_compose_config(
    files: list[Path], secrets: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` of ``files`` (scripts/compose_config.sh), with ``secrets``
    as the only values of their variables: no .env is read, none from this process."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env.update(secrets or {}, COMPOSE_DISABLE_ENV_FILE="1")
    return subprocess.run(
        [ROOT / "scripts/compose_config.sh", *map(str, files)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What `make compose-secrets` writes, in a directory of this test's."""
    var = tmp_path_factory.mktemp("compose-secrets")
    subprocess.run(
        [ROOT / "scripts/compose_secrets.sh", var / "env", var / "keys/signing-key.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    lines = (var / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@compose_check
def test_docker_compose_loads_it_as_written(secrets: dict[str, str]) -> None:
    loaded = docker_compose_config([COMPOSE_FILE], secrets)
    assert loaded.returncode == 0, loaded.stderr
    services = json.loads(loaded.stdout)["services"]
    assert set(services) == {*INFRASTRUCTURE, *MESH}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name
    # The signing key in auth's container alone; the published ports on loopback alone.
    assert [name for name, s in services.items() if s.get("secrets")] == ["auth"]
    published = {
        name: [(p["host_ip"], p["published"]) for p in s["ports"]]
        for name, s in services.items()
        if s.get("ports")
    }
    assert published == {"envoy": [("127.0.0.1", "8000")], "mailpit": [("127.0.0.1", "8025")]}
    assert services["auth"]["environment"]["DATABASE_URL"] == (
        f"postgresql://mp3mesh:{secrets['POSTGRES_PASSWORD']}@postgres:5432/mp3mesh"
    )


@compose_check
def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    refused = docker_compose_config([COMPOSE_FILE], None)
    assert refused.returncode == 1
    for variable in SECRET_VARIABLES:
        assert f"required variable {variable} is missing a value: run `make compose-secrets`" in (
            refused.stderr
        ), variable


@compose_check
def test_docker_compose_and_podman_compose_read_the_override_alike(
    secrets: dict[str, str],
) -> None:
    """The test runs podman-compose's reading of compose.yaml with the override; Docker
    Compose's (compose-go) must be the same where it matters: images, network, the
    swapped healthcheck, the dropped ports."""
    loaded = docker_compose_config([COMPOSE_FILE, OVERRIDE_FILE], secrets)
    assert loaded.returncode == 0, loaded.stderr
    docker = json.loads(loaded.stdout)["services"]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    podman_config = subprocess.run(
        [PODMAN_COMPOSE, "-f", COMPOSE_FILE, "-f", OVERRIDE_FILE, "config"],
        check=True, capture_output=True, text=True, env={**env, **secrets}, cwd=ROOT,
    ).stdout  # fmt: skip
    podman_services = yaml.safe_load(podman_config)["services"]
    for name, service in docker.items():
        theirs = podman_services[name]
        assert service["image"] == theirs["image"], name
        assert service["network_mode"] == theirs["network_mode"] == "host", name
        assert service["healthcheck"]["test"] == theirs["healthcheck"]["test"], name
        assert not service.get("ports") and not theirs.get("ports"), name


# --- the real thing ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    """`make images` tagged for this run (other worktrees build the same names), and the
    infrastructure's stand-ins (kept: shared by runs, rebuilt from podman's cache)."""
    base_tag = subprocess.run(
        [ROOT / "scripts/image_tag.sh"], check=True, capture_output=True, text=True
    ).stdout.strip()
    tag = f"{base_tag}-compose-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [ROOT / "scripts/images.sh"], check=True, cwd=ROOT, env={**os.environ, "IMAGE_TAG": tag}
    )
    subprocess.run([ROOT / "scripts/compose_standins.sh"], check=True, cwd=ROOT)
    yield tag
    for image in ("mp3mesh", "mp3mesh-envoy"):
        podman("rmi", f"localhost/{image}:{tag}", check=False)


class Project:
    """One `podman-compose` project: compose.yaml with the override, its own name, pod,
    env file and signing key, run inside the network namespace ``netns``."""

    def __init__(self, name: str, netns: str, var: Path, tag: str) -> None:
        self.name, self.netns, self.var = name, netns, var
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "MP3MESH_TAG": tag}
        self.env_file = var / "compose.env"
        subprocess.run(
            [ROOT / "scripts/compose_secrets.sh", self.env_file, var / "keys/signing-key.pem"],
            check=True,
            capture_output=True,
        )

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            "nsenter", f"--net=/run/netns/{self.netns}", str(PODMAN_COMPOSE),
            "--env-file", str(self.env_file), "-p", self.name, "--in-pod", self.name,
            "-f", str(COMPOSE_FILE), "-f", str(OVERRIDE_FILE), *args,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=ROOT)
        if check:
            assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def leftovers(self) -> dict[str, list[str]]:
        """What podman still has of this project."""
        label = f"label=io.podman.compose.project={self.name}"
        return {
            "containers": podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").split(),
            "pods": [p for p in podman("pod", "ls", "--format", "{{.Name}}").split()
                     if p == self.name],
            "volumes": [v for v in podman("volume", "ls", "--format", "{{.Name}}").split()
                        if v.startswith(f"{self.name}_")],
            "networks": [n for n in podman("network", "ls", "--format", "{{.Name}}").split()
                         if self.name in n],
        }  # fmt: skip

    def remove_leftovers(self) -> None:
        """Whatever a failed run left of this project (and only of it)."""
        left = self.leftovers()
        for container in left["containers"]:
            podman("rm", "-f", "-t", "0", container, check=False)
        for pod in left["pods"]:
            podman("pod", "rm", "-f", pod, check=False)
        for volume in left["volumes"]:
            podman("volume", "rm", "-f", volume, check=False)
        for network in left["networks"]:
            podman("network", "rm", "-f", network, check=False)

    def logs(self) -> str:
        out = []
        for service in [*INFRASTRUCTURE, *MESH]:
            tail = podman("logs", "--tail", "25", self.container(service), check=False)
            out.append(f"--- {service}\n{tail}")
        return "\n".join(out)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"mp3mesh-compose-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def project(images: str, netns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = Project(netns, netns, tmp_path_factory.mktemp("compose"), images)
    try:
        started = time.monotonic()
        project.compose("up", "-d")
        try:
            wait_for(
                lambda: in_netns(netns, "curl", "-sf", f"{EDGE}/readyz").returncode == 0,
                "Envoy /readyz (auth and gateway healthy) after podman-compose up",
                300,
            )
        except AssertionError:
            print(project.logs())
            raise
        print(f"podman-compose up -d to Envoy ready: {time.monotonic() - started:.1f} s")
        yield project
    finally:
        project.compose("down", "-v", "-t", "10", check=False)
        project.remove_leftovers()


def documented_commands() -> str:
    """The curl commands of docs/compose.md, as a person runs them against compose."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "docs/compose.md").read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith(f"EDGE={EDGE}\n")]
    return block


@compose_check
@pytest.mark.usefixtures("project")
def test_the_documented_curl_commands_convert_a_video_and_mailpit_gets_the_mail(
    netns: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "video.mp4", 6)
    script = f'set -euo pipefail\n{documented_commands()}\necho "JOB=$JOB"\n'
    ran = in_netns(netns, "bash", "-c", script, cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, (ran.stdout[-3000:], ran.stderr[-3000:])
    job = ran.stdout.splitlines()[-1].removeprefix("JOB=")
    # The watch's last line, just before the echo (the lines after it print nothing).
    last_update = json.loads(ran.stdout.splitlines()[-2])["job"]
    assert last_update["id"] == job
    assert last_update["status"] == "JOB_STATUS_SUCCEEDED", ran.stdout[-3000:]
    probe = ffprobe(tmp_path / "out.mp3")
    assert [stream["codec_name"] for stream in probe["streams"]] == ["mp3"]
    assert 5 < float(probe["format"]["duration"]) < 7

    def mails_to_user() -> list[dict[str, Any]]:
        listed = json.loads(curl(netns, f"{MAILPIT}/api/v1/messages"))["messages"]
        return [m for m in listed if any(to["Address"] == "me@example.com" for to in m["To"])]

    wait_for(lambda: bool(mails_to_user()), "the mail in Mailpit", 180)
    (mail,) = mails_to_user()
    headers = json.loads(curl(netns, f"{MAILPIT}/api/v1/message/{mail['ID']}/headers"))
    assert headers["X-Mp3mesh-Job"] == [job], headers


@compose_check
def test_every_healthcheck_passes_in_its_container(project: Project) -> None:
    """compose.yaml's healthchecks, run by podman in each container as Docker would run
    them. Here podman runs them on request only (no systemd for its timers), and from
    inside the namespace: a container on the "host" network has none of its own, so an
    exec into it gets the network of whoever calls podman."""

    def healthy(service: str) -> bool:
        result = in_netns(
            project.netns, "podman", "healthcheck", "run", project.container(service),
            env=project.env,
        )  # fmt: skip
        return result.returncode == 0

    for service in [*INFRASTRUCTURE, *MESH]:
        try:
            wait_for(lambda s=service: healthy(s), f"{service}'s healthcheck", 120)
        except AssertionError:
            print(podman("inspect", "--format", "{{json .State.Health}}",
                         project.container(service), check=False))  # fmt: skip
            raise


@compose_check
def test_the_mesh_runs_non_root_on_a_read_only_root(project: Project) -> None:
    for service in MESH:
        container = project.container(service)
        inspected = json.loads(podman("inspect", container))[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, service
        assert podman("exec", container, "id", "-u").strip() == "10001", service


@compose_check
def test_down_leaves_nothing_behind(project: Project) -> None:
    before = project.leftovers()
    assert len(before["containers"]) == len(INFRASTRUCTURE) + len(MESH), before
    assert before["pods"] == [project.name], before
    assert before["networks"] == [], before  # every container in the test's namespace
    project.compose("down", "-v", "-t", "10")
    assert project.leftovers() == {"containers": [], "pods": [], "volumes": [], "networks": []}
