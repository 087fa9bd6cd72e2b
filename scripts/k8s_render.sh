#!/usr/bin/env bash
# Render one kustomize overlay to stdout: scripts/k8s_render.sh dev|prod|prod-keda
# With kubectl's built-in kustomize, offline. The dev overlay's Secret comes from the
# git-ignored k8s/overlays/dev/secrets.env; where that file does not exist (a fresh
# clone, CI), the overlay is rendered from a copy of k8s/ that uses secrets.env.example,
# so the working tree is never changed.
set -euo pipefail
cd "$(dirname "$0")/.."
overlay=${1:?usage: k8s_render.sh OVERLAY}
dir=k8s/overlays/$overlay
[[ -f $dir/kustomization.yaml ]] || { echo "no overlay $dir" >&2; exit 2; }
if [[ -f $dir/secrets.env.example && ! -f $dir/secrets.env && $overlay == dev ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r k8s "$tmp/"
  cp "$dir/secrets.env.example" "$tmp/$dir/secrets.env"
  dir=$tmp/$dir
fi
kubectl kustomize "$dir"
