#!/usr/bin/env bash
# Build a pinned Go tool from the Go module proxy, once, and print where it is:
#   scripts/go_tool_build.sh NAME PACKAGE@VERSION [LDFLAGS]
# `go install PACKAGE@VERSION` (the tool's own go.sum pins its dependencies) into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/NAME/VERSION/NAME. Reused when present, so only a pin
# bump rebuilds; one build of NAME at a time (.ci/run starts some in the background: a
# second caller waits for the first, then finds the binary). LDFLAGS are added to "-s -w",
# e.g. the -X that sets the version a tool reports. The pins live with their users
# (bench/ghz.env, k8s/cluster/helm.env, tests/compose/versions.env).
# A tool that `go install` cannot build sources this file and calls cached_go_build with
# a build of its own (scripts/ferretdb_build.sh).
set -euo pipefail

# cached_go_build NAME VERSION BUILD: print the path of NAME built at VERSION, from the
# cache if there, else after running `BUILD BIN SCRATCH`, which must leave the binary in
# BIN/NAME (SCRATCH is its to use). Under a lock per NAME, in a temporary directory moved
# into place whole: a second caller waits and then finds the binary, and a build that
# fails or is interrupted leaves nothing behind.
cached_go_build() {
  local name=$1 version=$2 build=$3
  local out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/$name/$version
  if [[ -x $out/$name ]]; then echo "$out/$name"; return 0; fi
  command -v go >/dev/null || { echo "$name needs Go to build" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  exec 9>"$(dirname "$out")/.build.lock"
  flock 9
  if [[ -x $out/$name ]]; then echo "$out/$name"; return 0; fi
  # Global, for the trap; the Go module cache's files are read-only, hence the chmod.
  _go_build_tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
  trap 'chmod -R u+w "$_go_build_tmp"; rm -rf "$_go_build_tmp"' EXIT
  local start=$SECONDS bin=$_go_build_tmp/bin
  echo "building $name $version into $out" >&2
  mkdir "$bin"
  CGO_ENABLED=0 GOTOOLCHAIN=local "$build" "$bin" "$_go_build_tmp" </dev/null
  [[ -x $bin/$name ]] || { echo "building $name made no binary named $name" >&2; exit 1; }
  chmod 755 "$bin"
  rm -rf "$out"
  mv "$bin" "$out"
  echo "built $name in $((SECONDS - start))s" >&2
  echo "$out/$name"
}

# Sourced: only the function above.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

usage() { echo "usage: $0 NAME PACKAGE@VERSION [LDFLAGS]" >&2; exit 2; }
[[ $# == 2 || $# == 3 ]] || usage
name=$1 target=$2 ldflags=${3:-}
[[ $name =~ ^[A-Za-z0-9._-]+$ && $target == ?*@?* ]] || usage

go_install() { GOBIN=$1 go install -trimpath -ldflags "-s -w $ldflags" "$target"; }
cached_go_build "$name" "${target##*@}" go_install
