#!/usr/bin/env bash
# Build FerretDB (version in bench/ghz.env) once into the same cache as
# scripts/go_tool_build.sh and print the binary's path; bench/mongo_servers.py runs it.
# Not `go install ...@version` (go_tool_build.sh): FerretDB's main package refuses to start
# unless build/version/version.txt, absent from its module, holds the version, so the
# module is copied, the file written, and the copy built (a release build: no tags).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
version=$FERRETDB_VERSION
out=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/ferretdb/$version
if [[ -x $out/ferretdb ]]; then echo "$out/ferretdb"; exit 0; fi
command -v go >/dev/null || { echo "FerretDB needs Go to build" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.build.lock"
flock 9
if [[ -x $out/ferretdb ]]; then echo "$out/ferretdb"; exit 0; fi
tmp=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
start=$SECONDS
echo "building ferretdb $version into $out" >&2
export CGO_ENABLED=0 GOTOOLCHAIN=local
module=$(go mod download -json "github.com/FerretDB/FerretDB@$version" </dev/null \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $module ]] || { echo "go mod download found no FerretDB $version" >&2; exit 1; }
cp -r "$module" "$tmp/src"
chmod -R u+w "$tmp/src"
echo "$version" >"$tmp/src/build/version/version.txt"
echo "self-built" >"$tmp/src/build/version/package.txt"
mkdir "$tmp/bin"
(cd "$tmp/src" && go build -trimpath -ldflags "-s -w" -o "$tmp/bin/ferretdb" ./cmd/ferretdb </dev/null)
chmod 755 "$tmp/bin"
rm -rf "$out"
mv "$tmp/bin" "$out"
echo "built ferretdb in $((SECONDS - start))s" >&2
echo "$out/ferretdb"
