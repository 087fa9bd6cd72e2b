"""The prod overlay runs gRPC over mTLS by default: each party mounts its own
certificate's Secret where its TLS_* settings point, nothing waives plaintext, and the
cert-manager example makes exactly those Secrets with the identities the servers check;
plaintext is a component one adds on purpose."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack import ROOT
from mp3mesh.core.identity import CALLERS, EDGES
from mp3mesh.core.settings import GrpcTlsSettings
from tests.k8s.test_k8s_manifests import (
    MTLS_PARTIES,
    all_containers,
    container_env,
    mesh_service,
)

EXAMPLE = ROOT / "k8s/overlays/prod/certificates.example.yaml"


@pytest.mark.parametrize("overlay", ["prod", "prod-keda"])
def test_prod_speaks_mtls_with_a_certificate_per_party(overlay: str) -> None:
    seen = set()
    for workload, container in all_containers(overlay):
        service = mesh_service(container)
        if service not in MTLS_PARTIES or container["name"] == "migrate":
            continue
        env = container_env(overlay, container)
        assert env.get("ALLOW_PLAINTEXT_GRPC", "false") == "false", service
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert env["TLS_CERT_FILE"].startswith(mounts["mesh-tls"] + "/"), service
        assert volumes["mesh-tls"]["secret"]["secretName"] == f"{service}-tls"
        seen.add(service)
    assert seen == set(MTLS_PARTIES)


def test_the_cert_manager_example_issues_the_identities_the_servers_check() -> None:
    certificates = {
        doc["spec"]["secretName"]: doc["spec"]
        for doc in yaml.safe_load_all(EXAMPLE.read_text())
        if doc["kind"] == "Certificate" and not doc["spec"].get("isCA")
    }
    assert set(certificates) == {f"{name}-tls" for name in MTLS_PARTIES}
    for name in MTLS_PARTIES:
        spec = certificates[f"{name}-tls"]
        assert spec["uris"] == [f"spiffe://mp3mesh/{name}"]
        assert name in spec["dnsNames"]  # the host of AUTH_ADDRESS / GATEWAY_ADDRESS
        assert "client auth" in spec["usages"]
    callers = set().union(*CALLERS.values())
    assert callers <= set(MTLS_PARTIES) and EDGES <= callers


def test_plaintext_is_an_explicit_opt_in(tmp_path: Path) -> None:
    """The plaintext-grpc component, added to a copy of the prod overlay: the waiver is
    set, the TLS settings cleared, no certificate is mounted, and each service's settings
    load in production mode."""
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    mine = tmp_path / "k8s/overlays/mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../prod]\ncomponents: [../../components/plaintext-grpc]\n"
    )
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(mine)], check=True, capture_output=True, text=True
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    env = next(
        d["data"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("mp3mesh-config")
    )
    assert env["ALLOW_PLAINTEXT_GRPC"] == "true"
    assert (env["TLS_CA_FILE"], env["TLS_CERT_FILE"], env["TLS_KEY_FILE"]) == ("", "", "")
    assert "name: mesh-tls" not in rendered and "/etc/mp3mesh/tls" not in rendered
    fields = {k.lower(): v for k, v in env.items() if k.lower() in GrpcTlsSettings.model_fields}
    assert not GrpcTlsSettings(**fields).grpc_tls  # and production accepts it
