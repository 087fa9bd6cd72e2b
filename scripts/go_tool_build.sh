#!/usr/bin/env bash
# Build a pinned Go tool from the Go module proxy, once, and print where it is:
#   scripts/go_tool_build.sh NAME PACKAGE@VERSION [LDFLAGS]
# `go install PACKAGE@VERSION` (the tool's own go.sum pins its dependencies) into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/NAME/VERSION/NAME. Reused when present, so only a pin
# bump rebuilds; one build of NAME at a time (.ci/run starts some in the background: a
# second caller waits for the first, then finds the binary). LDFLAGS are added to "-s -w",
# e.g. the -X that sets the version a tool reports. The pins live with their users
# (bench/ghz.env, k8s/cluster/helm.env, tests/compose/versions.env).
set -euo pipefail
usage() { echo "usage: $0 NAME PACKAGE@VERSION [LDFLAGS]" >&2; exit 2; }
[[ $# == 2 || $# == 3 ]] || usage
name=$1 target=$2 ldflags=${3:-}
[[ $name =~ ^[A-Za-z0-9._-]+$ && $target == ?*@?* ]] || usage
version=${target##*@}
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/$name/$version
if [[ -x $out/$name ]]; then echo "$out/$name"; exit 0; fi
command -v go >/dev/null || { echo "$name needs Go to build (go install $target)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.build.lock"
flock 9
if [[ -x $out/$name ]]; then echo "$out/$name"; exit 0; fi
tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building $name $version into $out" >&2
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$tmp go install -trimpath -ldflags "-s -w $ldflags" \
  "$target" </dev/null
[[ -x $tmp/$name ]] || { echo "go install $target made no binary named $name" >&2; exit 1; }
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built $name in $((SECONDS - start))s" >&2
echo "$out/$name"
