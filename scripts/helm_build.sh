#!/usr/bin/env bash
# Build helm (HELM_VERSION in k8s/cluster/helm.env, Go >= 1.26) and print its path
# (scripts/go_tool_build.sh); the version goes in helm.sh/helm/v4/internal/version as
# upstream's Makefile sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source k8s/cluster/helm.env
exec scripts/go_tool_build.sh helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
