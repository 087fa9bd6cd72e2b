#!/usr/bin/env bash
# Render one kustomize overlay to stdout: scripts/k8s_render.sh dev|prod|prod-keda
# With kubectl's built-in kustomize, offline. The dev overlay's Secret comes from the
# git-ignored k8s/overlays/dev/secrets.env and jwt-signing-key.pem; where they do not
# exist (a fresh clone, CI), the overlay is rendered from a copy of k8s/ that uses
# secrets.env.example and a throwaway key, so the working tree is never changed.
set -euo pipefail
cd "$(dirname "$0")/.."
overlay=${1:?usage: k8s_render.sh OVERLAY}
dir=k8s/overlays/$overlay
[[ -f $dir/kustomization.yaml ]] || { echo "no overlay $dir" >&2; exit 2; }
if [[ $overlay == dev && ( ! -f $dir/secrets.env || ! -f $dir/jwt-signing-key.pem ) ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r k8s "$tmp/"
  [[ -f $dir/secrets.env ]] || cp "$dir/secrets.env.example" "$tmp/$dir/secrets.env"
  [[ -f $dir/jwt-signing-key.pem ]] ||
    openssl genpkey -algorithm ed25519 -out "$tmp/$dir/jwt-signing-key.pem" 2>/dev/null
  dir=$tmp/$dir
fi
kubectl kustomize "$dir"
