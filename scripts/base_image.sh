#!/usr/bin/env bash
# Make sure the image the Dockerfile starts from, debian:bookworm-slim, is in podman's
# local storage. Pulled when a registry is reachable; otherwise (no registry of container
# images is reachable from these machines) made with `debootstrap --variant=minbase
# bookworm` from Debian's own mirror and imported under the official name, so the
# Dockerfile stays the standard one. Once there, it is reused: nothing runs again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
BASE=docker.io/library/debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '\033[1m[base-image]\033[0m %s\n' "$*"; }

if podman image exists "$BASE"; then
  exit 0
fi
if timeout 120 podman pull -q "$BASE" >/dev/null 2>&1; then
  log "pulled $BASE"; exit 0
fi
log "$BASE cannot be pulled; making it with debootstrap --variant=minbase bookworm"
root=$(mktemp -d /var/tmp/mp3mesh-bookworm.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
# What the official slim image leaves out: package lists, caches, docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/*
tar -C "$root" -c . | podman import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$BASE" >/dev/null
log "imported $BASE ($(podman image inspect --format '{{.Size}}' "$BASE" | numfmt --to=iec))"
