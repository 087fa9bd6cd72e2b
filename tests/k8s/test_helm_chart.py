"""The Helm chart (k8s/chart/mp3mesh) against the kustomize overlays it is made from.

One source of truth: the chart's objects are the overlays' renders
(scripts/helm_chart_gen.py writes them to the chart's files/), its templates apply only
its values. So the offline checks here are that those files are a fresh render, that
`helm lint --strict` passes, and that `helm template` with values-dev.yaml / values-prod.yaml
gives the overlays' objects back one by one, apart from the labels Helm adds: every check
test_k8s_manifests.py makes of an overlay then holds for the chart's default render.

On the real control plane (gated like test_k8s_e2e.py: MP3MESH_K8S_E2E=1 or
MP3MESH_K8S_KUBECONFIG): install into a restricted namespace with every Deployment
Available on the kwok nodes, upgrade to other replicas and image tags, `helm test`
(Jobs that kwok completes: see templates/tests/health.yaml for what that proves),
uninstall leaving nothing of the release behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import ROOT
from tests.k8s.test_k8s_e2e import WAIT, Cluster, cluster, prepare_namespace, run, signing_key

CHART = ROOT / "k8s/chart/mp3mesh"
PROFILES = ["dev", "prod", "prod-keda"]
VALUES = {p: f"values-{p}.yaml" for p in PROFILES}
HELM_LABELS = {"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}
E2E = os.environ.get("MP3MESH_K8S_E2E") == "1" or bool(os.environ.get("MP3MESH_K8S_KUBECONFIG"))
__all__ = ["cluster"]  # the control-plane fixture, shared with test_k8s_e2e.py

pytestmark = [
    pytest.mark.timeout(1800),  # a cold build of helm takes minutes
    pytest.mark.skipif(
        shutil.which("go") is None or shutil.which("kubectl") is None,
        reason="needs Go (to build helm) and kubectl",
    ),
]
e2e = pytest.mark.skipif(not E2E, reason="needs a control plane: make k8s-e2e")


@pytest.fixture(scope="module")
def helm() -> Path:
    """helm at HELM_VERSION, built once from the Go module proxy and cached."""
    return Path(run(ROOT / "scripts/helm_build.sh").strip().splitlines()[-1])


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def template(helm: Path, *args: str) -> list[dict[str, Any]]:
    """`helm template` of the chart into namespace mp3mesh (the overlays'), hooks left out."""
    out = run(helm, "template", "mp3mesh", CHART, "-n", "mp3mesh", "--skip-tests", *args)
    return docs(out)


def by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the overlay has it: Helm's labels gone, and the labels map with them
    where the overlay's object has none (the prod NetworkPolicies)."""
    labels = obj["metadata"].get("labels", {})
    for key in HELM_LABELS:
        labels.pop(key, None)
    if not labels:
        obj["metadata"].pop("labels", None)
    return obj


def overlay(profile: str) -> list[dict[str, Any]]:
    """The overlay's render as the chart holds it: no Secret or Namespace objects, the
    generated Secrets under their plain names (values.secrets.existingSecret replaces
    mp3mesh-secrets)."""
    text = run(ROOT / "scripts/k8s_render.sh", profile)
    hashed = [o["metadata"]["name"] for o in docs(text) if o["kind"] == "Secret"]
    for name in hashed:
        text = text.replace(name, name.rsplit("-", 1)[0])
    return [o for o in docs(text) if o["kind"] not in ("Secret", "Namespace")]


def test_the_chart_files_are_a_fresh_render_of_the_overlays() -> None:
    """A change under k8s/ without `make helm-chart` fails here, not in a cluster."""
    run("python3", ROOT / "scripts/helm_chart_gen.py", "--check")


@pytest.mark.parametrize("values", ["values.yaml", *VALUES.values()])
def test_helm_lint_strict(helm: Path, values: str) -> None:
    run(helm, "lint", "--strict", CHART, "-f", CHART / values)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_chart_renders_the_overlay_object_by_object(helm: Path, profile: str) -> None:
    chart = by_name([without_helm_labels(o) for o in template(helm, "--set", f"profile={profile}")])
    kustomize = by_name(overlay(profile))
    assert sorted(chart) == sorted(kustomize)
    for key, obj in kustomize.items():
        assert chart[key] == obj, f"{key} differs between the chart and overlays/{profile}"


@pytest.mark.parametrize("profile", VALUES)
def test_the_values_files_select_their_overlay(helm: Path, profile: str) -> None:
    from_file = template(helm, "-f", str(CHART / VALUES[profile]))
    assert from_file == template(helm, "--set", f"profile={profile}")


def test_values_reach_the_objects(helm: Path) -> None:
    """Replicas, images, resources, Secret names and the toggles each change what they name."""
    sets = [
        "profile=prod",
        "replicas.auth=3",
        "image.mesh.tag=0.2.0",
        "image.envoy.tag=0.2.0",
        "secrets.existingSecret=managed",
        "tls.existingSecret=cert",
        "ingress.enabled=false",
        "networkPolicies.enabled=false",
        "resources.shim.limits.cpu=2",
    ]
    objects = template(helm, *(a for s in sets for a in ("--set", s)))
    found = by_name(objects)
    assert found["Deployment", "auth"]["spec"]["replicas"] == 3
    assert {o["kind"] for o in objects}.isdisjoint({"Ingress", "NetworkPolicy"})
    shim = found["Deployment", "shim"]["spec"]["template"]["spec"]["containers"][0]
    assert shim["resources"] == {"limits": {"cpu": 2}}
    text = yaml.safe_dump_all(objects)
    assert "mp3mesh-secrets" not in text and "name: managed" in text
    images = {
        c["image"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"localhost/mp3mesh:0.2.0", "localhost/mp3mesh-envoy:0.2.0"}


def test_dev_without_its_in_cluster_dependencies_keeps_the_mesh(helm: Path) -> None:
    """dependencies.enabled=false drops PostgreSQL, MongoDB, RabbitMQ and Mailpit only."""
    full = by_name(template(helm))
    bare = by_name(template(helm, "--set", "dependencies.enabled=false"))
    dropped = {name for kind, name in set(full) - set(bare)}
    assert dropped == {"postgres", "mongo", "rabbitmq", "mailpit", "mailpit-data"}
    assert not any(kind == "StatefulSet" for kind, _ in bare)


@pytest.mark.parametrize("bad", ["profile=staging", "replicas.nginx=2", "image.mesh.tag="])
def test_the_schema_refuses_bad_values(helm: Path, bad: str) -> None:
    result = subprocess.run(
        [str(helm), "template", "x", str(CHART), "--set", bad], capture_output=True, text=True
    )
    assert result.returncode != 0 and "schema" in result.stderr, result.stderr


# --- on the real control plane --------------------------------------------------------


def helm_in(c: Cluster, helm: Path, *args: str) -> str:
    return run(helm, *args, env={**c.env(), "HELM_CACHE_HOME": str(c.work / "helm")})


def restricted_namespace(c: Cluster, name: str, profile: str, objects: list[Any]) -> None:
    """The namespace the README has the operator make, with the Secrets the chart names
    (for dev too: the chart carries no secret values) and the dev claims' volumes."""
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    prepare_namespace(c, profile, name, [ns, *objects])
    if profile == "dev":
        example = ROOT / "k8s/overlays/dev/secrets.env.example"
        c.kubectl(
            "-n",
            name,
            "create",
            "secret",
            "generic",
            "mp3mesh-secrets",
            f"--from-env-file={example}",
        )
        key_file = signing_key(c.work / "signing-key.pem")
        c.kubectl(
            "-n", name, "create", "secret", "generic", "mp3mesh-jwt", f"--from-file={key_file}"
        )


def available(c: Cluster, namespace: str) -> dict[str, int]:
    """Each Deployment's ready replicas once all are Available, by name."""
    c.kubectl(
        "-n", namespace, "wait", "--for=condition=Available", "deploy", "--all", f"--timeout={WAIT}"
    )
    return {
        d["metadata"]["name"]: d["status"].get("readyReplicas", 0)
        for d in c.get("-n", namespace, "deploy")["items"]
    }


def leftovers(c: Cluster, namespace: str) -> list[str]:
    kinds = "deploy,sts,rs,pod,svc,cm,hpa,pdb,netpol,ingress,job"
    names = c.kubectl("-n", namespace, "get", kinds, "-o", "name").stdout.split()
    return [n for n in names if n != "configmap/kube-root-ca.crt"]


def release(c: Cluster, helm: Path, verb: str, namespace: str, *args: str) -> str:
    """`helm <verb> mp3mesh` in ``namespace`` (helm-<profile>) with that profile's values,
    waiting for every workload."""
    values = CHART / VALUES[namespace.removeprefix("helm-")]
    chart = [str(CHART), "-f", str(values), "--wait", "--timeout", WAIT]
    return helm_in(c, helm, verb, "mp3mesh", "-n", namespace, *chart, *args)


@e2e
@pytest.mark.parametrize("profile", VALUES)
def test_install_upgrade_test_uninstall(cluster: Cluster, helm: Path, profile: str) -> None:
    namespace = f"helm-{profile}"
    objects = template(helm, "-f", str(CHART / VALUES[profile]))
    restricted_namespace(cluster, namespace, profile, objects)
    release(cluster, helm, "install", namespace)
    assert all(available(cluster, namespace).values())
    for sts in cluster.get("-n", namespace, "statefulset")["items"]:
        assert sts["status"].get("readyReplicas") == sts["spec"]["replicas"], sts["metadata"]
    release(
        cluster,
        helm,
        "upgrade",
        namespace,
        "--set",
        "replicas.auth=3",
        "--set",
        "image.mesh.tag=0.1.1",
    )
    assert available(cluster, namespace)["auth"] == 3
    auth = cluster.get("-n", namespace, "deploy", "auth")
    assert auth["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.1")
    out = helm_in(cluster, helm, "test", "mp3mesh", "-n", namespace, "--timeout", WAIT)
    assert out.count("Succeeded") >= 2, out
    helm_in(cluster, helm, "uninstall", "mp3mesh", "-n", namespace, "--wait")
    deadline = time.monotonic() + 120
    while leftovers(cluster, namespace) and time.monotonic() < deadline:
        time.sleep(2)
    assert leftovers(cluster, namespace) == []
    # helm 4 lists releases in any status by default; its release records are Secrets.
    assert json.loads(helm_in(cluster, helm, "list", "-n", namespace, "-o", "json")) == []
    assert cluster.get("-n", namespace, "secret", "-l", "owner=helm")["items"] == []
