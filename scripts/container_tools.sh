#!/usr/bin/env bash
# What `make images` and `make k8s-smoke` need from Debian, installed when missing (as
# root): podman and buildah (build and run images without a Docker engine), runc (the
# runtime that works on these hosts' cgroups), debootstrap (the base image when no
# registry is reachable), slirp4netns (a network namespace of its own for the containers
# of `make fresh-check`, which reach the package registries), catatonit (the pods' pause
# process), iproute2, socat and curl (the smoke test's network namespace, its relays, its
# REST client).
# With --missing it only prints the packages that are missing (scripts/bootstrap.sh
# installs them together with the rest).
set -euo pipefail
missing=()
for tool in podman:podman buildah:buildah runc:runc catatonit:catatonit debootstrap:debootstrap \
  slirp4netns:slirp4netns ip:iproute2 nsenter:util-linux socat:socat curl:curl; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [[ "${1:-}" == "--missing" ]]; then
  [[ ${#missing[@]} == 0 ]] || echo "${missing[*]} uidmap fuse-overlayfs"
  exit 0
fi
[[ ${#missing[@]} == 0 ]] && exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "[container-tools] missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "[container-tools] installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" uidmap fuse-overlayfs >/dev/null
