#!/usr/bin/env bash
# Sets up everything the mesh needs on a Debian/Ubuntu machine, idempotently and without
# ever prompting: the virtualenv and Python dependencies, buf from npm, the project's own
# PostgreSQL cluster (scripts/postgres.sh) and RabbitMQ (started when installed but
# stopped). What Debian must provide is worked out first and installed in one go as root;
# as another user, one message names all of it and nothing is changed.
# With --test it also needs ffprobe (the tests check MP3s with it), libfaketime (a fault
# test skews one service's clock), nginx and iproute2 (a proxy in front of Envoy, and
# clients in network namespaces of their own: tests/e2e/test_client_address.py), Debian's chromium
# (the web page's test drives it with playwright) and the container tools
# (scripts/container_tools.sh: the k8s smoke test's pods).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian keeps some of what is checked for (rabbitmq-server, runc, debootstrap) in sbin,
# which a non-root PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for_tests=0
[[ "${1:-}" == "--test" ]] && for_tests=1

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
is_root() { [[ "$(id -u)" == 0 ]]; }
port_open() { python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}
wait_port() {  # port, what, seconds
  for _ in $(seq 1 "$3"); do port_open "$1" && return 0; sleep 1; done
  log "$2 did not come up on port $1"; exit 1
}

# --- What Debian must provide ----------------------------------------------------------
missing=()
if [[ ! -x .venv/bin/python ]] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
[[ -f node_modules/.installed && ! package.json -nt node_modules/.installed ]] || command -v npm >/dev/null || missing+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
port_open 5672 || command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
if [[ $for_tests == 1 ]]; then
  command -v ffprobe >/dev/null || missing+=(ffmpeg)
  # The clock-skew fault test runs one service under libfaketime.
  ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(faketime)
  # playwright's own browser download does not work everywhere: the tests use Debian's.
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  # A real reverse proxy in front of Envoy, and clients with addresses of their own.
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v ip >/dev/null || missing+=(iproute2)
  read -ra container_tools <<<"$(scripts/container_tools.sh --missing)"
  missing+=("${container_tools[@]}")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  if ! is_root; then
    log "these Debian packages are missing; install them, then run this again:"
    log "  sudo apt-get install ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null >/dev/null
fi

# --- Python ------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  log "installing Python dependencies"
  .venv/bin/pip install -q --upgrade pip </dev/null
  .venv/bin/pip install -q -e '.[dev,stack,cli]' </dev/null
  touch .venv/.installed
fi

# --- npm: buf, and the web page's tus client ----------------------------------------------
# Again whenever package.json changed since the last install (as pip's marker above).
if [[ ! -f node_modules/.installed || package.json -nt node_modules/.installed ]]; then
  log "installing buf and tus-js-client from npm"
  # Not `npm ci`: this npm writes lock files without the other platforms' optional
  # @bufbuild/buf-* packages, which `npm ci` then refuses. --no-save keeps the lock as is.
  npm install --no-save --no-audit --no-fund --loglevel=error </dev/null >/dev/null
  touch node_modules/.installed
fi

# --- PostgreSQL: the project's own cluster ----------------------------------------------
scripts/postgres.sh start

# --- RabbitMQ ------------------------------------------------------------------------
if ! port_open 5672; then
  is_root || { log "RabbitMQ is installed but stopped; start it: sudo rabbitmq-server -detached"; exit 1; }
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ 60
fi
log "ready"
