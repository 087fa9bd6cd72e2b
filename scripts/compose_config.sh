#!/usr/bin/env bash
# `docker compose config` without Docker: load compose files with compose-go, the loader
# Docker Compose is built on (tests/compose/config: schema, interpolation, the merge of
# override files, the consistency checks), and print the project as JSON. Built with the
# pins of tests/compose/config/go.mod and go.sum from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/compose-config/<hash of its sources>/, and reused.
# Variables come from the environment and a .env beside the first file, as for Docker.
# Usage: scripts/compose_config.sh COMPOSE_FILE [OVERRIDE_FILE]...
set -euo pipefail
src=$(cd "$(dirname "$0")/../tests/compose/config" && pwd)
hash=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/compose-config/$hash
if [[ ! -x $out/compose-config ]]; then
  command -v go >/dev/null || { echo "compose_config.sh needs Go >= 1.24 to build" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w" -o "$tmp/compose-config" . </dev/null)
  chmod 755 "$tmp"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  echo "built compose-config (compose-go) in $((SECONDS - start)) s" >&2
fi
exec "$out/compose-config" "$@"
