"""Every overlay on a real Kubernetes control plane (`make k8s-e2e`).

What the offline tier (test_k8s_manifests.py) cannot know is what the API server and its
controllers decide; this module asks them. The cluster is scripts/k8s_cluster.sh's: the
upstream kube-apiserver (default admission plugins, PodSecurity among them, RBAC),
kube-controller-manager and kube-scheduler of one pinned release, etcd, and kwok playing
three nodes whose kubelets start every pod at once (no images run: that is
`make k8s-smoke`'s tier). Against it:

- each overlay is applied server-side into a namespace of its own labelled
  restricted, with no warning from kubectl (a Pod Security violation in a Deployment's
  template is only a warning at apply time, and then the ReplicaSet cannot create pods);
- every Deployment becomes Available and every StatefulSet ready on the kwok nodes, the
  dev claims bound to static volumes (the cluster's default StorageClass), with no
  FailedCreate or FailedScheduling event;
- re-applying is a no-op (`kubectl diff --server-side` is empty) and conflicts with no
  other field manager: the HPA owns the gateway's `replicas`;
- the previous release's manifests, then the current ones, then every image retagged
  (the next release): no immutable-field error;
- draining a node keeps every PodDisruptionBudget's minimum;
- the deploy commands of docs/kubernetes.md run as written.

The overlays name the namespace `mp3mesh`; each is applied here through a generated
kustomization that sets another (`namespace:` renames the overlay's own Namespace object
too, labels and all), so all of them live side by side. docs/kubernetes.md's commands use
`mp3mesh` itself.

Skipped unless MP3MESH_K8S_E2E=1 (the cluster is then started and stopped here) or
MP3MESH_K8S_KUBECONFIG names a running cluster of scripts/k8s_cluster.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import ROOT

pytestmark = [
    pytest.mark.timeout(1800),  # a cold build of the control plane takes ~20 min
    pytest.mark.skipif(
        os.environ.get("MP3MESH_K8S_E2E") != "1" and not os.environ.get("MP3MESH_K8S_KUBECONFIG"),
        reason="needs a Kubernetes control plane: make k8s-e2e (MP3MESH_K8S_E2E=1)",
    ),
]

OVERLAYS = ["dev", "prod", "prod-keda"]
# The release before the control-plane tier existed: what an upgrade starts from.
PREVIOUS_RELEASE = "db231c9"
NODES = {"kwok-node-1", "kwok-node-2", "kwok-node-3"}
KEDA_CRDS = ROOT / "third_party/keda"
DEPLOY_DOC = "docs/kubernetes.md"  # the deploy commands an operator follows
WAIT = "180s"  # bounded waits for controllers; a Ready pod on kwok takes about a second


@dataclass
class Cluster:
    kubeconfig: Path
    bin: Path
    work: Path  # generated kustomizations and copies of k8s/ trees

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin}:{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        }

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / "kubectl"), *args]
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def apply(self, kustomization: Path) -> subprocess.CompletedProcess[str]:
        """`kubectl apply --server-side -k`, as field manager `kubectl`; not checked: the
        callers assert on its exit status and stderr (warnings, conflicts)."""
        return self.kubectl("apply", "--server-side", "-k", str(kustomization), check=False)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


@dataclass
class Applied:
    """One overlay applied into one namespace: where from, and what kubectl said."""

    overlay: str
    namespace: str
    kustomization: Path
    result: subprocess.CompletedProcess[str]
    objects: list[dict[str, Any]] = field(default_factory=list)


def run(*command: str | Path, **kwargs: Any) -> str:
    result = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))}: {result.stdout}{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The control plane: MP3MESH_K8S_KUBECONFIG's, or one started (and stopped) here."""
    bin_dir = Path(run(ROOT / "scripts/k8s_cluster_build.sh").strip().splitlines()[-1])
    given = os.environ.get("MP3MESH_K8S_KUBECONFIG")
    kubeconfig = given or run(ROOT / "scripts/k8s_cluster.sh", "up").strip().splitlines()[-1]
    try:
        yield Cluster(Path(kubeconfig), bin_dir, tmp_path_factory.mktemp("k8s-e2e"))
    finally:
        if not given:
            run(ROOT / "scripts/k8s_cluster.sh", "down")


def k8s_tree(c: Cluster, release: str | None) -> Path:
    """A copy of k8s/ (the working tree's, or ``release``'s from git) with the dev
    overlay's secrets.env made from its example, so the working tree is never written."""
    dest = c.work / (release or "current")
    if not dest.exists():
        dest.mkdir()
        if release is None:
            shutil.copytree(ROOT / "k8s", dest / "k8s")
        else:
            got = subprocess.run(["git", "archive", release, "k8s"], cwd=ROOT, capture_output=True)
            assert got.returncode == 0, (
                f"the upgrade test needs commit {release} (a shallow clone lacks it: "
                f"git fetch --unshallow): {got.stderr.decode()}"
            )
            archive = got.stdout
            with tarfile.open(fileobj=BytesIO(archive)) as tar:
                tar.extractall(dest, filter="data")
        dev = dest / "k8s/overlays/dev"
        shutil.copy(dev / "secrets.env.example", dev / "secrets.env")
        signing_key(dev / "jwt-signing-key.pem")
    return dest / "k8s"


def signing_key(path: Path) -> Path:
    """auth's Ed25519 signing key, as docs/kubernetes.md has the operator make it."""
    if not path.exists():
        run("openssl", "genpkey", "-algorithm", "ed25519", "-out", path)
    return path


def in_namespace(
    c: Cluster, overlay: str, namespace: str, release: str | None = None, retag: str = ""
) -> Path:
    """A kustomization that puts ``overlay`` into ``namespace`` (and, given ``retag``,
    gives every image that tag: what the next release does); its directory."""
    target = k8s_tree(c, release) / "overlays" / overlay
    directory = c.work / f"ns-{namespace}-{release or 'current'}{retag and '-' + retag}"
    directory.mkdir(exist_ok=True)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(target, directory)],
    }
    if retag:
        images = {
            container["image"].rsplit(":", 1)[0]
            for o in rendered(c, in_namespace(c, overlay, namespace, release))
            if o["kind"] in ("Deployment", "StatefulSet", "Job")
            for container in pod_containers(o)
        }
        kustomization["images"] = [{"name": i, "newTag": retag} for i in sorted(images)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def rendered(c: Cluster, kustomization: Path) -> list[dict[str, Any]]:
    out = c.kubectl("kustomize", str(kustomization)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def claims(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each PersistentVolumeClaim the objects make: standalone ones and one per replica
    of each StatefulSet's claim templates (named <template>-<statefulset>-<ordinal>)."""
    found = [
        (o["metadata"]["name"], o["spec"]) for o in objects if o["kind"] == "PersistentVolumeClaim"
    ]
    for sts in (o for o in objects if o["kind"] == "StatefulSet"):
        for template in sts["spec"].get("volumeClaimTemplates", []):
            for i in range(sts["spec"].get("replicas", 1)):
                name = f"{template['metadata']['name']}-{sts['metadata']['name']}-{i}"
                found.append((name, template["spec"]))
    return found


def static_volumes(c: Cluster, namespace: str, objects: list[dict[str, Any]]) -> None:
    """One PersistentVolume of the cluster's default StorageClass (`static`, binding when
    a pod first uses the claim) per claim, as an administrator makes them where nothing
    provisions volumes; the scheduler picks one per claim and the PV controller binds it.
    hostPath, never mounted: kwok's pods have no containers."""
    for name, spec in claims(objects):
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{name}", "labels": {"mp3mesh-e2e": namespace}},
            "spec": {
                "storageClassName": "static",
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec["accessModes"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/var/lib/mp3mesh-e2e/{namespace}/{name}"},
            },
        }
        c.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(pv))


def prepare_namespace(
    c: Cluster, overlay: str, namespace: str, objects: list[dict[str, Any]]
) -> None:
    """What docs/kubernetes.md has the operator do before applying: the Namespace (the overlay's
    own object), then for prod the Secrets it does not make (the URLs, auth's signing key,
    TLS); for dev, volumes."""
    ns = next(o for o in objects if o["kind"] == "Namespace")
    c.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(ns))
    if overlay.startswith("prod"):
        example = ROOT / "k8s/overlays/prod/secrets.env.example"
        create = ["-n", namespace, "create", "secret"]
        c.kubectl(*create, "generic", "mp3mesh-secrets", f"--from-env-file={example}")
        key_file = signing_key(c.work / "signing-key.pem")
        c.kubectl(*create, "generic", "mp3mesh-jwt", f"--from-file={key_file}")
        key, crt = c.work / "tls.key", c.work / "tls.crt"
        if not crt.exists():
            subject = "/CN=mp3mesh.example.com"
            x509 = ["-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject]
            run("openssl", "req", *x509, "-keyout", key, "-out", crt)
        c.kubectl(*create, "tls", "mp3mesh-tls", f"--cert={crt}", f"--key={key}")
    if overlay == "prod-keda":
        crds = c.kubectl("apply", "--server-side", "-f", str(KEDA_CRDS))
        assert not crds.stderr, crds.stderr
        names = ["crd/scaledobjects.keda.sh", "crd/triggerauthentications.keda.sh"]
        c.kubectl("wait", "--for=condition=Established", *names, f"--timeout={WAIT}")
    static_volumes(c, namespace, objects)


def apply(c: Cluster, overlay: str, namespace: str, release: str | None = None) -> Applied:
    kustomization = in_namespace(c, overlay, namespace, release)
    objects = rendered(c, kustomization)
    if not c.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout:
        prepare_namespace(c, overlay, namespace, objects)
    result = c.apply(kustomization)
    return Applied(overlay, namespace, kustomization, result, objects)


def wait_ready(c: Cluster, namespace: str) -> None:
    """Every Deployment Available and rolled out (no pod of an older template left),
    every StatefulSet rolled out, every Job complete."""
    ns = ["-n", namespace]
    if c.get("deployments", *ns)["items"]:
        available = "--for=condition=Available"
        c.kubectl("wait", *ns, available, "deployment", "--all", f"--timeout={WAIT}")
    for kind in ("deployment", "statefulset"):
        for w in c.get(kind, *ns)["items"]:
            name = f"{kind}/{w['metadata']['name']}"
            c.kubectl("rollout", "status", *ns, name, f"--timeout={WAIT}")
    if c.get("jobs", *ns)["items"]:
        c.kubectl("wait", *ns, "--for=condition=Complete", "job", "--all", f"--timeout={WAIT}")


# The scheduler binding a StatefulSet pod that its controller is replacing under the same
# name during a rolling update: a race the controllers settle by themselves (the new pod
# is scheduled next), not a manifest the cluster cannot place.
SCHEDULER_RACE = re.compile(
    r'running Bind plugin "DefaultBinder": .*(pod \S+ is being deleted|pods "[^"]+" not found)'
)


# The scheduler trying a StatefulSet pod before its informer has seen the claim the
# controller created for it just before: settled once the claim reaches its cache. Only a
# claim that exists now (so the scheduler merely saw it late) is forgiven.
CLAIM_NOT_YET_SEEN = re.compile(r'persistentvolumeclaim "([^"]+)" not found')


def failure_events(c: Cluster, namespace: str) -> list[str]:
    events = c.get("events", "-n", namespace)["items"]
    claims = {pvc["metadata"]["name"] for pvc in c.get("pvc", "-n", namespace)["items"]}
    return [
        f"{o['kind']}/{o['name']}: {e['reason']}: {e['message']}"
        for e in events
        for o in [e["involvedObject"]]
        if e["reason"] in ("FailedCreate", "FailedScheduling")
        and not (e["reason"] == "FailedScheduling" and _settled_race(e["message"], claims))
    ]


def _settled_race(message: str, claims: set[str]) -> bool:
    late_claim = CLAIM_NOT_YET_SEEN.search(message)
    return bool(SCHEDULER_RACE.search(message)) or (
        late_claim is not None and late_claim.group(1) in claims
    )


@pytest.fixture(scope="module")
def applied(cluster: Cluster) -> dict[str, Applied]:
    """Each overlay applied server-side into e2e-<overlay>."""
    return {overlay: apply(cluster, overlay, f"e2e-{overlay}") for overlay in OVERLAYS}


# --- apply, admission, controllers --------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_applies_server_side_with_no_warning(
    applied: dict[str, Applied], overlay: str
) -> None:
    a = applied[overlay]
    assert a.result.returncode == 0, a.result.stderr
    assert a.result.stderr == "", f"kubectl warned or failed:\n{a.result.stderr}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_the_restricted_pod_security_standard(
    cluster: Cluster, applied: dict[str, Applied], overlay: str
) -> None:
    labels = cluster.get("namespace", applied[overlay].namespace)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_becomes_ready_on_the_kwok_nodes(
    cluster: Cluster, applied: dict[str, Applied], overlay: str
) -> None:
    a = applied[overlay]
    wait_ready(cluster, a.namespace)
    pods = cluster.get("pods", "-n", a.namespace)["items"]
    workloads = [o for o in a.objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads and pods
    for pod in pods:
        assert pod["spec"].get("nodeName") in NODES, pod["metadata"]["name"]
        assert pod["status"]["phase"] in ("Running", "Succeeded"), pod["metadata"]["name"]
    for w in workloads:  # a pod of every workload exists (none silently refused)
        selector = w["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= p["metadata"].get("labels", {}).items() for p in pods), w[
            "metadata"
        ]
    for pvc in cluster.get("pvc", "-n", a.namespace)["items"]:
        assert pvc["status"]["phase"] == "Bound", pvc["metadata"]["name"]
    assert failure_events(cluster, a.namespace) == []


# --- server-side apply: no-op re-apply, field ownership ------------------------------------


def test_the_hpa_sizes_the_gateway_and_reapplying_leaves_its_replicas(
    cluster: Cluster, applied: dict[str, Applied]
) -> None:
    """prod's manifests leave the gateway's `replicas` to its HPA: the HPA raises it to its
    minimum (through /scale), the applier (field manager `kubectl`) owns no `replicas`,
    and a re-apply neither conflicts nor resets it. (Seen on 1.35: scaling through /scale
    does not make the HPA a manager of a `replicas` nobody owned; nothing owns it.)"""
    ns = ["-n", applied["prod"].namespace]
    minimum = cluster.get("hpa/gateway", *ns)["spec"]["minReplicas"]
    assert minimum > 1  # else the Deployment's default of 1 would pass without the HPA
    replicas = f"--for=jsonpath={{.spec.replicas}}={minimum}"
    cluster.kubectl("wait", *ns, replicas, "deployment/gateway", f"--timeout={WAIT}")
    events = cluster.get("events", *ns, "--field-selector=involvedObject.name=gateway")["items"]
    assert any(e["reason"] == "SuccessfulRescale" for e in events), events
    deployment = cluster.get("deployment/gateway", *ns, "--show-managed-fields")
    owners = [
        m["manager"]
        for m in deployment["metadata"]["managedFields"]
        if "f:replicas" in m.get("fieldsV1", {}).get("f:spec", {})
    ]
    assert "kubectl" not in owners, owners
    again = cluster.apply(applied["prod"].kustomization)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert cluster.get("deployment/gateway", *ns)["spec"]["replicas"] == minimum


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_reapplying_changes_nothing(
    cluster: Cluster, applied: dict[str, Applied], overlay: str
) -> None:
    a = applied[overlay]
    wait_ready(cluster, a.namespace)
    again = cluster.apply(a.kustomization)
    assert again.returncode == 0 and again.stderr == "", f"a conflict or a warning:\n{again.stderr}"
    # kubectl diff reads the live object, then dry-runs the apply: a controller writing
    # status in between (the HPA, every sync) shows as a difference that is not ours. A
    # drift of the manifests shows on every attempt; a race does not repeat three times.
    for _ in range(3):
        diff = cluster.kubectl("diff", "--server-side", "-k", str(a.kustomization), check=False)
        if diff.returncode == 0:
            break
    assert diff.returncode == 0 and diff.stdout == "", f"not a no-op:\n{diff.stdout}{diff.stderr}"


# --- upgrade from the previous release ------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_upgrade_from_the_previous_release(cluster: Cluster, overlay: str) -> None:
    namespace = f"e2e-upgrade-{overlay}"
    old = apply(cluster, overlay, namespace, release=PREVIOUS_RELEASE)
    assert old.result.returncode == 0, old.result.stderr
    wait_ready(cluster, namespace)
    new = apply(cluster, overlay, namespace)
    assert "immutable" not in new.result.stderr and "Forbidden" not in new.result.stderr, (
        new.result.stderr
    )
    assert new.result.returncode == 0, new.result.stderr
    wait_ready(cluster, namespace)
    assert failure_events(cluster, namespace) == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_upgrade_to_new_image_tags(cluster: Cluster, overlay: str) -> None:
    """The next release changes every image's tag: each workload rolls, none refuses. (A
    Job's pod template is immutable: the dev overlay's Job that initiated MongoDB's
    replica set failed exactly this, `spec.template: field is immutable`.)"""
    namespace = f"e2e-retag-{overlay}"
    first = apply(cluster, overlay, namespace)
    assert first.result.returncode == 0, first.result.stderr
    wait_ready(cluster, namespace)
    retagged = in_namespace(cluster, overlay, namespace, retag="9.9.9")
    result = cluster.apply(retagged)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    wait_ready(cluster, namespace)
    pods = cluster.get("pods", "-n", namespace)["items"]
    tags = {c["image"].rsplit(":", 1)[1] for p in pods for c in p["spec"]["containers"]}
    assert tags == {"9.9.9"}, tags
    assert failure_events(cluster, namespace) == []


# --- voluntary disruption -------------------------------------------------------------------


def healthy_per_budget(c: Cluster, namespace: str, budgets: list[dict[str, Any]]) -> dict[str, int]:
    """How many pods each budget selects that are Ready and not being deleted."""
    pods = c.get("pods", "-n", namespace)["items"]
    ready = [
        p
        for p in pods
        if "deletionTimestamp" not in p["metadata"]
        and any(
            cond["type"] == "Ready" and cond["status"] == "True"
            for cond in p["status"].get("conditions", [])
        )
    ]
    return {
        b["metadata"]["name"]: sum(
            b["spec"]["selector"]["matchLabels"].items() <= p["metadata"].get("labels", {}).items()
            for p in ready
        )
        for b in budgets
    }


def test_draining_a_node_keeps_every_budgets_minimum(
    cluster: Cluster, applied: dict[str, Applied]
) -> None:
    namespace = applied["prod"].namespace
    wait_ready(cluster, namespace)
    budgets = cluster.get("pdb", "-n", namespace)["items"]
    assert budgets
    observed = "--for=jsonpath={.status.observedGeneration}=1"
    cluster.kubectl("wait", "-n", namespace, observed, "pdb", "--all", f"--timeout={WAIT}")
    budgets = cluster.get("pdb", "-n", namespace)["items"]
    minimum = {b["metadata"]["name"]: b["status"]["desiredHealthy"] for b in budgets}
    pods = cluster.get("pods", "-n", namespace)["items"]
    per_node = {n: sum(p["spec"].get("nodeName") == n for p in pods) for n in NODES}
    node = max(sorted(per_node), key=lambda n: per_node[n])

    lowest = healthy_per_budget(cluster, namespace, budgets)
    done = threading.Event()

    def sample() -> None:  # watch the budgets while the drain evicts
        while not done.is_set():
            for name, count in healthy_per_budget(cluster, namespace, budgets).items():
                lowest[name] = min(lowest[name], count)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        flags = ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s"]
        drain = cluster.kubectl("drain", node, *flags, check=False, timeout=200)
    finally:
        done.set()
        sampler.join()
    try:
        assert drain.returncode == 0, drain.stdout + drain.stderr
        evicted = re.findall(rf"evicting pod {namespace}/(\S+)", drain.stdout + drain.stderr)
        assert evicted, f"the drain evicted no pod of {namespace}: {drain.stdout}{drain.stderr}"
        assert all(lowest[name] >= minimum[name] for name in minimum), (lowest, minimum)
        wait_ready(cluster, namespace)
        left = [
            p["metadata"]["name"]
            for p in cluster.get("pods", "-A", f"--field-selector=spec.nodeName={node}")["items"]
        ]
        assert left == [], f"pods left on the drained {node}: {left}"
    finally:
        cluster.kubectl("uncordon", node)


# --- docs/kubernetes.md, as written -----------------------------------------------------------


def documented_deploy_commands() -> list[str]:
    """The shell lines of docs/kubernetes.md's block that applies the dev overlay."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / DEPLOY_DOC).read_text(), re.S)
    block = next((b for b in blocks if "kubectl apply -k k8s/overlays/dev" in b), None)
    assert block, f"{DEPLOY_DOC} has no sh block with `kubectl apply -k k8s/overlays/dev`"
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_documented_deploy_commands_run_as_written(cluster: Cluster) -> None:
    """Run each line as written, in the repo, with the cluster's kubectl first on PATH.
    Two kinds of line are adapted, and only those: a watch (`get pods -w`) runs for a
    bounded time; a port-forward (`&`) is not run, since kwok's pods have no containers
    to forward to (make k8s-smoke reaches the pods through Envoy)."""
    commands = documented_deploy_commands()
    assert any(line.startswith("kubectl apply -k k8s/overlays/dev") for line in commands), commands
    dev = rendered(cluster, in_namespace(cluster, "dev", "mp3mesh"))
    static_volumes(cluster, "mp3mesh", dev)
    skipped = []
    for line in commands:
        command = line.split(" #")[0].strip()
        if command.endswith("&"):
            assert " port-forward " in command, line
            skipped.append(command)
            continue
        watch = " -w" in f"{command} "
        result = subprocess.run(
            ["timeout", "10", "bash", "-c", command] if watch else ["bash", "-c", command],
            cwd=ROOT,
            env=cluster.env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        if watch:
            assert result.returncode == 124 and "NAME" in result.stdout, (
                result.stdout + result.stderr
            )
        else:
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        if command.startswith("kubectl apply"):
            assert "Warning" not in result.stderr, result.stderr
    assert skipped, f"{DEPLOY_DOC} no longer port-forwards: update this test"
    wait_ready(cluster, "mp3mesh")
    assert failure_events(cluster, "mp3mesh") == []
