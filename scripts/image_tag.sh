#!/usr/bin/env bash
# The images' tag, read from its one home: k8s/base/kustomization.yaml `images:`.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=$(sed -n 's/^ *newTag: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' k8s/base/kustomization.yaml | sort -u)
[[ $(wc -l <<<"$tag") == 1 && -n "$tag" ]] || { echo "image_tag.sh: one newTag expected in k8s/base/kustomization.yaml" >&2; exit 1; }
echo "$tag"
