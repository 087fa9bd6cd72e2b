"""The dev overlay's mesh Deployments as real pods (`make k8s-smoke`).

The images are built from the repo's Dockerfile (`make images`), the dev overlay is
rendered with `kubectl kustomize`, and its six mesh Deployments (auth, gateway,
converter, notification, shim, Envoy) run as pods with `podman kube play`, with the
containers, commands, environment, security contexts and volumes the manifests give.
Then a user registers, logs in, uploads a video, watches the job, downloads the MP3 and
gets the mail, through the Envoy pod with the README's curl commands.

What podman cannot play is stood in for, and only that:
- Services (names like `auth`): every pod runs in one network namespace this test makes
  (`ip netns`) and the ConfigMap's addresses point at 127.0.0.1 there; all traffic stays
  on that namespace's loopback (podman's bridge network is never used);
- the StatefulSets: MongoDB is the MongoDB-wire server nx-27017 and SMTP is aiosmtpd,
  both run inside the namespace; PostgreSQL and RabbitMQ are the machine's, reached
  through socat relays over a UNIX socket (127.0.0.1:5432 and :5672 inside the namespace
  to their ports on 127.0.0.1 outside), with a temp database and queue names of this run;
- the generated Secrets: podman secrets of the same names, holding those URLs and the
  JWT signing key (mounted in auth's pod only; its volume says `optional: false`, which
  podman 4.3 reads without checking it is there);
- init containers (podman 4.3 fails to remove a finished one): each migration init
  container runs first as a pod of its own, from the same container spec;
- containerPorts: podman turns them into port mappings, which it refuses for a pod on a
  given network namespace; the processes listen where their settings say regardless;
- probes: podman ignores them; the test waits for Envoy's /readyz instead.
"""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from devstack import ROOT, drop_queues, make_video, temp_database, wait_for, with_password
from mp3mesh.core.settings import BrokerSettings

pytestmark = [
    pytest.mark.k8s_smoke,
    pytest.mark.timeout(1800),  # the first test's setup builds the images
    pytest.mark.skipif(
        os.environ.get("MP3MESH_K8S_SMOKE") != "1",
        reason="builds images and runs pods: make k8s-smoke (MP3MESH_K8S_SMOKE=1)",
    ),
]

MESH = ["auth", "gateway", "converter", "notification", "shim", "envoy"]
MESH_UID = 10001
CONTAINERS_CONF = ROOT / "scripts/containers.conf"
PASSWORD = "a-long-password"


def podman(*args: str, check: bool = True, netns: str | None = None) -> str:
    command = ["podman", *args]
    if netns:  # nsenter, not `ip netns exec`: that one remounts /sys and hides the cgroups
        command = ["nsenter", f"--net=/run/netns/{netns}", *command]
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {result.stdout}{result.stderr}")
    return result.stdout


def in_netns(netns: str, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", *command], capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    """`make images` (the base made by debootstrap when it cannot be pulled, then both
    images), tagged for this run only: other worktrees on the machine build the same
    names. The tag is removed afterwards; the layers stay cached."""
    base_tag = subprocess.run(
        [ROOT / "scripts/image_tag.sh"], check=True, capture_output=True, text=True
    ).stdout.strip()
    tag = f"{base_tag}-smoke-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [ROOT / "scripts/images.sh"], check=True, cwd=ROOT, env={**os.environ, "IMAGE_TAG": tag}
    )
    yield tag
    for image in ("mp3mesh", "mp3mesh-envoy"):
        podman("rmi", f"localhost/{image}:{tag}", check=False)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"mp3mesh-smoke-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


class Processes:
    """Background processes of this test, each logging to a file; all stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for process in reversed(self.running):
            process.terminate()
        for process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def port_open_in(netns: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"
    return in_netns(netns, sys.executable, "-c", probe).returncode == 0


@pytest.fixture(scope="module")
def infrastructure(
    netns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """PostgreSQL, RabbitMQ (relayed), MongoDB-wire server and SMTP inside the namespace;
    the Secret's values for them."""
    var = tmp_path_factory.mktemp("k8s-smoke")
    processes = Processes(var)
    ns = ["nsenter", f"--net=/run/netns/{netns}"]
    try:
        with temp_database("mp3mesh_k8s_smoke") as database_url:
            # Inside the namespace, the ports the manifests use; outside, the servers'.
            relays = {5432: urlsplit(database_url).port, 5672: 5672}
            for port, outside in relays.items():
                sock = var / f"relay-{port}.sock"
                processes.start(
                    f"relay-out-{port}",
                    ["socat", f"UNIX-LISTEN:{sock},fork,mode=600", f"TCP:127.0.0.1:{outside}"],
                )
                wait_for(sock.exists, f"relay socket {sock}", 60)
                processes.start(
                    f"relay-in-{port}",
                    [*ns, "socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                     f"UNIX-CONNECT:{sock}"],
                )  # fmt: skip
            (var / "mongo").mkdir()
            processes.start(
                "mongo",
                [*ns, str(ROOT / ".venv/bin/nx-27017"), "--data-dir", str(var / "mongo"),
                 "--host", "127.0.0.1", "--port", "27017", "--pid-file", str(var / "mongo.pid")],
            )  # fmt: skip
            maildir = var / "mail"
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).mkdir(parents=True)
            processes.start(
                "smtp",
                [*ns, sys.executable, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:1025",
                 "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
            )  # fmt: skip
            for port in (5432, 5672, 27017, 1025):
                wait_for(lambda p=port: port_open_in(netns, p), f"port {port} in {netns}", 180)
            yield {
                "DATABASE_URL": with_password(database_url, 5432),  # the relay in the namespace
                "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=30",
                "MONGO_URL": "mongodb://127.0.0.1:27017",
                "MAILDIR": str(maildir),
                "VAR": str(var),
            }
    finally:
        processes.stop()


def rendered_dev() -> list[dict[str, Any]]:
    out = subprocess.run(
        [ROOT / "scripts/k8s_render.sh", "dev"], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def pod_manifests(
    infra: dict[str, str], tag: str, image_tag: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]:
    """The mesh Deployments and their ConfigMap as podman can play them, the migration
    init containers as Pods of their own, and the Secret. Pods and the Secret (a podman
    secret: global on the machine) get this run's tag in their names, so that runs on one
    machine do not meet."""
    docs = copy.deepcopy(rendered_dev())
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    secrets = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in docs if d["kind"] == "Secret"}
    secret, jwt_secret = secrets["mp3mesh-secrets"], secrets["mp3mesh-jwt"]
    rendered_secret_name = secret["metadata"]["name"]
    secret["metadata"]["name"] = f"{rendered_secret_name}-{tag}"
    rendered_jwt_name = jwt_secret["metadata"]["name"]
    jwt_secret["metadata"]["name"] = f"{rendered_jwt_name}-{tag}"
    configmap["data"].update(
        AUTH_ADDRESS="127.0.0.1:50051",  # Services, which podman cannot play
        GATEWAY_ADDRESS="127.0.0.1:50052",
        SHIM_ADDRESS="127.0.0.1:8080",
        SMTP_HOST="127.0.0.1",
        VIDEO_QUEUE=f"video.k8s-smoke-{tag}",
        MP3_QUEUE=f"mp3.k8s-smoke-{tag}",
    )
    deployments, migrations = [], []
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in MESH:
            deployment = doc
            name = deployment["metadata"]["name"]
            deployment["metadata"]["name"] = f"{name}-{tag}"
            spec = deployment["spec"]["template"]["spec"]
            for container in [*spec["containers"], *spec.get("initContainers", [])]:
                container["image"] = container["image"].rsplit(":", 1)[0] + f":{image_tag}"
                container.pop("ports", None)  # port mappings: not with a namespace's network
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef", {})
                    if ref.get("name") == rendered_secret_name:
                        ref["name"] = secret["metadata"]["name"]
            for volume in spec.get("volumes", []):
                if volume.get("secret", {}).get("secretName") == rendered_jwt_name:
                    volume["secret"]["secretName"] = jwt_secret["metadata"]["name"]
                    # podman 4.3 dereferences a secret volume's `optional` unchecked.
                    volume["secret"]["optional"] = False
            for init in spec.pop("initContainers", []):
                migrations.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": f"{name}-{init['name']}-{tag}"},
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": spec["securityContext"],
                            "containers": [init],
                            "volumes": spec["volumes"],
                        },
                    }
                )
            deployments.append(deployment)
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(f"{m}-{tag}" for m in MESH)
    return [configmap, *deployments], [configmap, *migrations], (secret, jwt_secret)


def create_secret(secret: dict[str, Any], values: dict[str, str]) -> str:
    """A podman secret named as the rendered Secret: what kube play's secretKeyRef and
    secret volumes read (a JSON object of base64 values). ``values`` replace the
    rendered ones (the URLs of this run's infrastructure)."""
    name = secret["metadata"]["name"]
    data = {
        key: base64.b64encode(values[key].encode()).decode() if key in values else rendered
        for key, rendered in secret["data"].items()
    }
    podman("secret", "rm", name, check=False)
    subprocess.run(
        ["podman", "secret", "create", name, "-"],
        input=json.dumps(data),
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )
    return name


def create_volume_secret(secret: dict[str, Any]) -> str:
    """A podman secret for a Secret mounted as a volume: kube play reads those as a Secret
    object whose ``data`` it writes to the files as they stand, so the values go in
    decoded."""
    name = secret["metadata"]["name"]
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    podman("secret", "rm", name, check=False)
    subprocess.run(
        ["podman", "secret", "create", name, "-"],
        input=json.dumps(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
        ),
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )
    return name


def container_names(tag: str) -> dict[str, str]:
    """This run's running mesh containers, by Deployment: `<name>-<tag>-pod-0-<container>`."""
    running = set(podman("ps", "--format", "{{.Names}}").split())
    wanted = {deployment: f"{deployment}-{tag}-pod-0-{deployment}" for deployment in MESH}
    return {deployment: name for deployment, name in wanted.items() if name in running}


@pytest.fixture(scope="module")
def pods(images: str, netns: str, infrastructure: dict[str, str]) -> Iterator[dict[str, str]]:
    var = Path(infrastructure["VAR"])
    tag = uuid.uuid4().hex[:8]
    mesh, migrations, pod_secrets = pod_manifests(infrastructure, tag, images)
    mesh_file, migrations_file = var / "mesh.yaml", var / "migrations.yaml"
    mesh_file.write_text(yaml.safe_dump_all(mesh))
    migrations_file.write_text(yaml.safe_dump_all(migrations))
    env_secret, volume_secret = pod_secrets
    secret_names = [create_secret(env_secret, infrastructure), create_volume_secret(volume_secret)]
    queues = [mesh[0]["data"]["VIDEO_QUEUE"], mesh[0]["data"]["MP3_QUEUE"]]
    delays = BrokerSettings.model_fields["retry_delays_seconds"].default  # the dev overlay's
    with ExitStack() as cleanup:
        cleanup.callback(drop_queues, *queues, retry_delays=delays)  # the broker is shared
        for secret_name in secret_names:
            cleanup.callback(podman, "secret", "rm", secret_name, check=False)
        cleanup.callback(podman, "kube", "down", str(migrations_file), check=False)
        podman("kube", "play", "--network", "host", str(migrations_file), netns=netns)
        for pod in migrations[1:]:
            container = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
            exit_code = podman("wait", container).strip()
            assert exit_code == "0", podman("logs", container, check=False)
        cleanup.callback(podman, "kube", "down", str(mesh_file), check=False)
        podman("kube", "play", "--network", "host", str(mesh_file), netns=netns)
        try:
            wait_for(
                lambda: (
                    in_netns(netns, "curl", "-sf", "http://127.0.0.1:8000/readyz").returncode == 0
                ),
                "Envoy /readyz (auth and gateway healthy)",
                180,
            )
        except AssertionError:
            for name in container_names(tag).values():
                print(f"--- {name}\n{podman('logs', '--tail', '30', name, check=False)}")
            raise
        yield container_names(tag)


def curl(netns: str, *args: str, timeout: float = 60) -> str:
    result = in_netns(netns, "curl", "-sS", "--fail-with-body", "--max-time", str(timeout), *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_a_video_becomes_an_mp3_and_a_mail_through_the_envoy_pod(
    pods: dict[str, str], netns: str, infrastructure: dict[str, str], tmp_path: Path
) -> None:
    edge = "http://127.0.0.1:8000"
    user = f"k8s-smoke-{uuid.uuid4().hex[:8]}@example.com"
    body = json.dumps({"email": user, "password": PASSWORD})
    curl(netns, "-X", "POST", f"{edge}/v1/users", "-d", body)
    token = json.loads(curl(netns, "-X", "POST", f"{edge}/login", "-u", f"{user}:{PASSWORD}"))[
        "token"
    ]
    auth = f"Authorization: Bearer {token}"
    video = make_video(tmp_path / "video.mp4", 6)
    job = json.loads(
        curl(netns, "-X", "POST", f"{edge}/upload", "-F", f"file=@{video}", "-H", auth)
    )["job"]
    updates = [
        json.loads(line)["job"]
        for line in curl(
            netns, "-N", f"{edge}/v1/jobs/{job['id']}:watch", "-H", auth, timeout=300
        ).splitlines()
        if line
    ]
    assert updates[-1]["status"] == "JOB_STATUS_SUCCEEDED", updates[-1]
    mp3 = tmp_path / "out.mp3"
    curl(netns, f"{edge}/download?fid={updates[-1]['mp3FileId']}", "-H", auth, "-o", str(mp3))
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(mp3)],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    assert probe["format"]["format_name"] == "mp3"
    assert probe["streams"][0]["codec_name"] == "mp3"
    assert 5 < float(probe["format"]["duration"]) < 7
    maildir = Path(infrastructure["MAILDIR"]) / "new"
    wait_for(lambda: any(maildir.iterdir()), "the mail", 180)
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in maildir.iterdir()
    ]
    assert [m["To"] for m in mails if m["X-Mp3mesh-Job"] == job["id"]] == [user]


def test_the_pods_ran_as_non_root_on_a_read_only_root(pods: dict[str, str]) -> None:
    assert set(pods) == set(MESH)
    for deployment, container in pods.items():
        inspected = json.loads(podman("inspect", container))[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, deployment
        assert podman("exec", container, "id", "-u").strip() == str(MESH_UID), deployment
        denied = subprocess.run(
            ["podman", "exec", container, "touch", "/root-is-writable"],
            capture_output=True, text=True,
            env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        )  # fmt: skip
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, deployment
        assert podman("exec", container, "touch", "/tmp/writable") == "", deployment
        # No build tools in the final images: no installer, no compiler.
        tools = podman(
            "exec",
            container,
            "sh",
            "-c",
            "python3 -m pip --version; command -v gcc cc pip",
            check=False,
        )
        assert "pip " not in tools and "/" not in tools, (deployment, tools)


def test_the_consumers_heartbeat_probe_passes_in_their_pods(pods: dict[str, str]) -> None:
    for consumer in ("converter", "notification"):
        podman(
            "exec",
            pods[consumer],
            "python",
            "-m",
            "mp3mesh.core.heartbeat",
            "/tmp/heartbeat",
            "--max-age",
            "15",
        )


def test_every_pod_serves_metrics_where_its_annotations_point(
    pods: dict[str, str], netns: str
) -> None:
    """A scrape of each pod as Prometheus would make it, from the prometheus.io annotations
    of the rendered Deployments: each answers with its own metrics (tests/e2e/test_metrics.py
    checks how one job moves them)."""
    expected = {
        "auth": "# TYPE grpc_server_handled_total counter",
        "gateway": "# TYPE mp3mesh_uploads_total counter",
        "converter": "# TYPE mp3mesh_jobs_total counter",
        "notification": "# TYPE mp3mesh_mails_total counter",
        "shim": "# TYPE mp3mesh_http_requests_total counter",
        "envoy": "# TYPE envoy_cluster_upstream_rq_total counter",
    }
    scraped = set()
    for deployment in rendered_dev():
        name = deployment["metadata"]["name"]
        if deployment["kind"] != "Deployment" or name not in MESH:
            continue
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        url = f"http://127.0.0.1:{annotations['prometheus.io/port']}"
        assert expected[name] in curl(netns, url + annotations["prometheus.io/path"]), name
        scraped.add(name)
    assert scraped == set(MESH)
