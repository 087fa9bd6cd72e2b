#!/usr/bin/env bash
# Build envoy/descriptor.binpb, the FileDescriptorSet Envoy's grpc_json_transcoder loads.
#
# `buf build` on the workspace in buf.yaml (protos/ + vendored third_party/googleapis),
# written as a plain google.protobuf.FileDescriptorSet (not a buf image), with every
# import (google/api/*, google/protobuf/* well-known types) and with source info, which
# is what Envoy's docs ask of `protoc --include_imports --include_source_info`.
# Usage: scripts/build_descriptor.sh [output]   (default envoy/descriptor.binpb)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-envoy/descriptor.binpb}
buf=${BUF:-$(command -v buf || echo node_modules/.bin/buf)}
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$buf" build --as-file-descriptor-set -o "$tmp#format=binpb"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out ($(wc -c <"$out") bytes)"
