#!/usr/bin/env bash
# Regenerate the Python stubs in gen/ from protos/. google/api/* comes from the
# googleapis-common-protos wheel at run time, so only our own protos are generated.
set -euo pipefail
out=${1:-gen}
cd "$(dirname "$0")/.."
rm -rf "$out/mp3mesh"
mkdir -p "$out"
python -m grpc_tools.protoc \
  -I protos -I third_party/googleapis \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  $(find protos -name '*.proto' | sort)
