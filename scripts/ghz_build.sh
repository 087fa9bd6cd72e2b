#!/usr/bin/env bash
# Build the bench's Go load tools (versions in bench/ghz.env) and print the binary's path
# (scripts/go_tool_build.sh): ghz by default, `ghz_build.sh vegeta` for the REST rows' client.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source bench/ghz.env
case ${1:-ghz} in
  ghz) exec scripts/go_tool_build.sh ghz "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" ;;
  vegeta) exec scripts/go_tool_build.sh vegeta "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" ;;
  *) echo "usage: $0 [ghz|vegeta]" >&2; exit 2 ;;
esac
