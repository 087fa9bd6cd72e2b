#!/usr/bin/env bash
# Sets up everything the mesh needs on a Debian/Ubuntu machine, idempotently:
#   the virtualenv and Python dependencies, buf from npm, and the local PostgreSQL and
#   RabbitMQ (started when installed but stopped; installed when missing and we are root).
# With --test it also makes sure ffprobe is there (the tests check MP3s with it) and
# Debian's chromium (the web page's test drives it with playwright).
set -euo pipefail
cd "$(dirname "$0")/.."

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
apt_updated=0
apt_install() {
  is_root || { log "missing $*; install it (as root: apt-get install $*)"; exit 1; }
  if [[ $apt_updated == 0 ]]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
wait_port() {  # port, what, seconds
  for _ in $(seq 1 "$3"); do port_open "$1" && return 0; sleep 1; done
  log "$2 did not come up on port $1"; exit 1
}

# --- Python ------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv || { apt_install python3-venv; python3 -m venv .venv; }
fi
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  log "installing Python dependencies"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev,stack,cli]'
  touch .venv/.installed
fi

# --- buf (npm) -----------------------------------------------------------------------
if [[ ! -x node_modules/.bin/buf ]]; then
  command -v npm >/dev/null || apt_install npm
  log "installing buf from npm"
  # Not `npm ci`: this npm writes lock files without the other platforms' optional
  # @bufbuild/buf-* packages, which `npm ci` then refuses. --no-save keeps the lock as is.
  npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- ffprobe and chromium (tests only) -------------------------------------------------------
if [[ $for_tests == 1 ]] && ! command -v ffprobe >/dev/null; then
  log "installing ffmpeg (for ffprobe)"
  apt_install ffmpeg
fi
# playwright's own browser download does not work everywhere: the tests use Debian's.
if [[ $for_tests == 1 ]] && [[ ! -x /usr/bin/chromium ]]; then
  log "installing chromium (for the web page's test)"
  apt_install chromium
fi

# --- PostgreSQL ------------------------------------------------------------------------
pg_port=${PGPORT:-5432}
if ! port_open "$pg_port"; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"; apt_install postgresql
  fi
  log "starting PostgreSQL"
  for v in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
  done
  wait_port "$pg_port" PostgreSQL 30
fi

# --- RabbitMQ ------------------------------------------------------------------------
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || { log "installing RabbitMQ"; apt_install rabbitmq-server; }
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ 60
fi
# The stack's database (the tests make their own).
if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'mp3mesh'" | grep -q 1; then
  log "creating database mp3mesh"
  createdb -h 127.0.0.1 -p "$pg_port" -U postgres mp3mesh
fi
log "ready"
