#!/usr/bin/env bash
# Build ghz (GHZ_VERSION in bench/ghz.env) from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/ghz/<GHZ_VERSION>/ghz and print that path.
# The pattern of scripts/helm_build.sh: reused when present, so only a pin bump rebuilds;
# one build at a time (a second caller waits for it, then finds the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/ghz/$GHZ_VERSION
if [[ -x $out/ghz ]]; then echo "$out/ghz"; exit 0; fi
command -v go >/dev/null || { echo "ghz needs Go to build" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.build.lock"
flock 9
if [[ -x $out/ghz ]]; then echo "$out/ghz"; exit 0; fi
tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building ghz $GHZ_VERSION into $out" >&2
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$tmp go install -trimpath -ldflags "-s -w" \
  "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" </dev/null
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $((SECONDS - start))s" >&2
echo "$out/ghz"
