#!/usr/bin/env bash
# Build ghz (GHZ_VERSION in bench/ghz.env) and print its path (scripts/go_tool_build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
exec scripts/go_tool_build.sh ghz "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
