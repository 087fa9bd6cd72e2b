#!/usr/bin/env bash
# Build the images with podman: mp3mesh (the Python services) and mp3mesh-envoy (the
# edge), tagged with the tag k8s/base/kustomization.yaml's `images:` sets (its one
# home). The base, debian:bookworm-slim, is pulled or made once (scripts/base_image.sh);
# layers are cached, dependencies before code, so a rebuild after a code change only
# redoes the last layers.
# Usage: scripts/images.sh [mesh|envoy]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
log() { printf '\033[1m[images]\033[0m %s\n' "$*"; }

# IMAGE_TAG: another tag for this build (the smoke test tags its own, so that runs from
# several worktrees of one machine never run each other's images).
tag=${IMAGE_TAG:-$(scripts/image_tag.sh)}
targets=("$@")
[[ ${#targets[@]} == 0 ]] && targets=(mesh envoy)

scripts/container_tools.sh
scripts/base_image.sh
build_args=(--network host --layers --pull=never)
# pip inside the build trusts the CA bundle the host's pip trusts (TLS may be intercepted
# on the way to PyPI); elsewhere pip's own bundle is used.
if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
  build_args+=(--volume "$PIP_CERT:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi
for target in "${targets[@]}"; do
  case $target in
    mesh) image=mp3mesh ;;
    envoy) image=mp3mesh-envoy; scripts/build_descriptor.sh >/dev/null ;;
    *) log "unknown image $target (mesh or envoy)"; exit 2 ;;
  esac
  log "building localhost/$image:$tag (--target $target)"
  start=$SECONDS
  podman build "${build_args[@]}" --target "$target" -t "localhost/$image:$tag" . \
    >"${IMAGES_LOG:-/dev/stdout}"
  log "built localhost/$image:$tag in $((SECONDS - start)) s"
done
