#!/usr/bin/env bash
# Build helm (HELM_VERSION in k8s/cluster/helm.env) from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/helm/<HELM_VERSION>/helm and print that path.
# Like k8s_cluster_build.sh: reused when present, so only a pin bump rebuilds; helm's
# own go.sum pins its dependencies (go install at the tag), the version goes in
# helm.sh/helm/v4/internal/version as upstream's Makefile sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source k8s/cluster/helm.env
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/helm/$HELM_VERSION
if [[ -x $out/helm ]]; then echo "$out/helm"; exit 0; fi
command -v go >/dev/null || { echo "helm needs Go >= 1.26 to build" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# One build at a time (.ci/run starts one in the background): a second caller waits
# for it, then finds the binary.
exec 9>"$(dirname "$out")/.build.lock"
flock 9
if [[ -x $out/helm ]]; then echo "$out/helm"; exit 0; fi
tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building helm $HELM_VERSION into $out" >&2
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$tmp go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" </dev/null
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $((SECONDS - start))s" >&2
echo "$out/helm"
