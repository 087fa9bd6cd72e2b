#!/usr/bin/env bash
# Vendor KEDA's CustomResourceDefinitions that overlays/prod-keda uses (ScaledObject,
# TriggerAuthentication) into third_party/keda/, from the kedacore/keda module source at
# KEDA_VERSION (k8s/cluster/versions.env), fetched through the Go module proxy (checked
# against the Go checksum database). `make k8s-e2e` installs them before applying the
# overlay: an API server refuses a custom resource whose CRD does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source k8s/cluster/versions.env
: "${KEDA_VERSION:?}"
# The module zip, not its extracted directory: go refuses to extract a module whose go
# directive is newer than the local toolchain, and only YAML files are wanted here.
# (go exits non-zero for that reason after downloading the zip: its JSON says where it is.)
info=$(cd /tmp && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" </dev/null || true)
zip=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("Zip", ""))' "$info")
[[ -f $zip ]] || { echo "cannot download github.com/kedacore/keda/v2@$KEDA_VERSION" >&2; exit 1; }
out=third_party/keda
rm -rf "$out"
mkdir -p "$out"
python3 - "$zip" "github.com/kedacore/keda/v2@$KEDA_VERSION" "$out" <<'PY'
import sys, zipfile
path, prefix, out = sys.argv[1:]
with zipfile.ZipFile(path) as z:
    for crd in ("scaledobjects", "triggerauthentications"):
        name = f"{prefix}/config/crd/bases/keda.sh_{crd}.yaml"
        with open(f"{out}/keda.sh_{crd}.yaml", "wb") as f:
            f.write(z.read(name))  # KeyError names the file if the layout changed
PY
cat >"$out/README.md" <<EOT
KEDA's CustomResourceDefinitions for ScaledObject and TriggerAuthentication, copied
unchanged from github.com/kedacore/keda/v2@$KEDA_VERSION (config/crd/bases/) by
scripts/vendor_keda_crds.sh; Apache License 2.0. Used by \`make k8s-e2e\` to install the
CRDs before applying k8s/overlays/prod-keda. Do not edit: change KEDA_VERSION in
k8s/cluster/versions.env and re-run the script.
EOT
echo "vendored KEDA $KEDA_VERSION CRDs into $out"
