#!/usr/bin/env bash
# Build FerretDB (version in bench/ghz.env) once into the same cache as
# scripts/go_tool_build.sh, under its lock, and print the binary's path;
# bench/mongo_servers.py runs it.
# Not `go install ...@version`: FerretDB's main package refuses to start unless
# build/version/version.txt, absent from its module, holds the version, so the module is
# copied, the file written, and the copy built (a release build: no tags).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
# shellcheck source=scripts/go_tool_build.sh
source scripts/go_tool_build.sh
version=$FERRETDB_VERSION

build_ferretdb() {
  local bin=$1 src=$2/src module
  module=$(go mod download -json "github.com/FerretDB/FerretDB@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $module ]] || { echo "go mod download found no FerretDB $version" >&2; exit 1; }
  cp -r "$module" "$src"
  chmod -R u+w "$src"
  echo "$version" >"$src/build/version/version.txt"
  echo "self-built" >"$src/build/version/package.txt"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$bin/ferretdb" ./cmd/ferretdb)
}
cached_go_build ferretdb "$version" build_ferretdb
