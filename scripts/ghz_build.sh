#!/usr/bin/env bash
# Build ghz (GHZ_VERSION in bench/ghz.env) from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/ghz/<GHZ_VERSION>/ghz and print that path;
# `ghz_build.sh vegeta`: the HTTP load tool the bench's REST rows use (VEGETA_VERSION), alike.
# The pattern of scripts/helm_build.sh: reused when present, so only a pin bump rebuilds;
# one build at a time (a second caller waits for it, then finds the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
tool=${1:-ghz}
case $tool in
  ghz) version=$GHZ_VERSION module=github.com/bojand/ghz/cmd/ghz ;;
  vegeta) version=$VEGETA_VERSION module=github.com/tsenart/vegeta/v12 ;;
  *) echo "usage: $0 [ghz|vegeta]" >&2; exit 2 ;;
esac
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/$tool/$version
if [[ -x $out/$tool ]]; then echo "$out/$tool"; exit 0; fi
command -v go >/dev/null || { echo "$tool needs Go to build" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.build.lock"
flock 9
if [[ -x $out/$tool ]]; then echo "$out/$tool"; exit 0; fi
tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building $tool $version into $out" >&2
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$tmp go install -trimpath -ldflags "-s -w" \
  "$module@$version" </dev/null
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $((SECONDS - start))s" >&2
echo "$out/$tool"
