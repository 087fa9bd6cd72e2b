#!/usr/bin/env bash
# Build the stand-ins for compose.yaml's infrastructure images (tests/compose/Dockerfile):
# localhost/mp3mesh-compose-{postgres,rabbitmq,mongo,mailpit}:standin, for the machines
# where no image registry is reachable (tests/compose/override.yaml swaps them in).
# The Debian base is the project images' (scripts/base_image.sh); Mailpit is built from
# the Go module proxy (MAILPIT_VERSION in tests/compose/versions.env) by
# scripts/go_tool_build.sh and reused from its cache; podman's
# layer cache makes a rebuild with nothing changed take seconds.
# Usage: scripts/compose_standins.sh [postgres|rabbitmq|mongo|mailpit]...  (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
log() { printf '\033[1m[compose-standins]\033[0m %s\n' "$*"; }
# shellcheck source=/dev/null
source tests/compose/versions.env
targets=("$@")
[[ ${#targets[@]} == 0 ]] && targets=(postgres rabbitmq mongo mailpit)

mailpit=
if [[ " ${targets[*]} " == *" mailpit "* ]]; then
  mailpit=$(scripts/go_tool_build.sh mailpit "github.com/axllent/mailpit@$MAILPIT_VERSION" \
    "-X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION")
fi

scripts/container_tools.sh
scripts/base_image.sh
# The build context: the Dockerfile, the entrypoints and the Mailpit binary.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp tests/compose/Dockerfile tests/compose/*-entrypoint.sh "$context/"
if [[ -n $mailpit ]]; then cp "$mailpit" "$context/"; else : >"$context/mailpit"; fi
build_args=(--network host --layers --pull=never)
if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
  build_args+=(--volume "$PIP_CERT:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi
for target in "${targets[@]}"; do
  case $target in
    postgres | rabbitmq | mongo | mailpit) ;;
    *) log "unknown stand-in $target (postgres, rabbitmq, mongo or mailpit)"; exit 2 ;;
  esac
  image=localhost/mp3mesh-compose-$target:standin
  start=$SECONDS
  podman build "${build_args[@]}" --target "$target" -t "$image" "$context" \
    >"${IMAGES_LOG:-/dev/stdout}"
  log "built $image in $((SECONDS - start)) s"
done
