#!/bin/sh
# The Envoy image's entrypoint: render the config from the environment into /tmp (the
# root filesystem is read-only), then become Envoy. Extra arguments go to Envoy.
set -eu
here=$(dirname "$0")
python3 "$here/render.py" -o /tmp/envoy.yaml --require-descriptor
exec envoy -c /tmp/envoy.yaml --disable-hot-restart --log-level "${ENVOY_LOG_LEVEL:-warn}" \
  --file-flush-interval-msec 1000 "$@"
