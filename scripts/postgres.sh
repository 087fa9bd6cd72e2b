#!/usr/bin/env bash
# The project's own PostgreSQL cluster: `scripts/postgres.sh start|stop|status`.
#
# Why a cluster of our own instead of the system one: a stock Debian PostgreSQL asks for
# a password over TCP, and a machine's cluster may be configured by someone else in any
# way; changing its pg_hba.conf behind the user's back is not ours to do. So the mesh gets
# a cluster made with the installed binaries (initdb) under var/postgres: it listens on
# 127.0.0.1 only, at the port of stack.env's DATABASE_URL, with no UNIX socket, and asks
# for a password (scram-sha-256) that is generated here and kept in var/postgres/pgpass
# (mode 0600, git-ignored). libpq reads it through PGPASSFILE, so no URL, log line or
# process list carries it. `make clean` stops the cluster and removes it with var/.
#
# The server never runs as root (PostgreSQL refuses to): run as root, it runs as the
# `postgres` user the package creates, and if that user cannot reach this checkout (a
# clone under /root), the data lives under /var/tmp instead, linked from var/postgres/data.
# Nothing here prompts.
set -euo pipefail
cd "$(dirname "$0")/.."

LINK=$PWD/var/postgres
HOME_DIR=$LINK
PASSFILE=$HOME_DIR/pgpass
LOGFILE=$HOME_DIR/server.log
PORT=$(sed -n 's|^DATABASE_URL=.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p' stack.env)
SUPERUSER=postgres

log() { printf '\033[1m[postgres]\033[0m %s\n' "$*"; }
die() { log "$*" >&2; exit 1; }

bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -x "$dir/initdb" ]] || die "no PostgreSQL server binaries (as root: apt-get install postgresql)"
  echo "$dir"
}

# Runs a server-side command as the cluster's owner: ourselves, or `postgres` when root
# (from /, which it can enter: every path given to it is absolute).
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The cluster's home, var/postgres; as root, when the `postgres` user cannot reach this
# checkout (a clone under /root), a directory under /var/tmp that var/postgres links to.
# Every path handed to a command run as `postgres` is the resolved one (it cannot go
# through /root either).
make_home() {
  [[ -d "$LINK" ]] && return 0
  mkdir -p "$(dirname "$LINK")"
  if [[ "$(id -u)" == 0 ]] && ! runuser -u postgres -- test -x "$(dirname "$LINK")"; then
    local elsewhere
    elsewhere=/var/tmp/mp3mesh-postgres-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)
    log "the postgres user cannot reach $LINK; the cluster lives in $elsewhere"
    mkdir -p "$elsewhere"
    chmod 0755 "$elsewhere"
    ln -sfn "$elsewhere" "$LINK"
  else
    mkdir -p "$LINK"
  fi
}
resolve_home() {
  [[ -e "$LINK" ]] || return 0
  HOME_DIR=$(readlink -f "$LINK")
  PASSFILE=$HOME_DIR/pgpass
  LOGFILE=$HOME_DIR/server.log
}
resolve_home

initialise() {
  local bin=$1 data=$2 password pwfile
  log "creating the cluster in $data (port $PORT)"
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  mkdir -p "$data"
  pwfile=$(mktemp "$HOME_DIR/.pw.XXXXXX")
  printf '%s\n' "$password" >"$pwfile"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$pwfile" "$(readlink -f "$data")"
  fi
  chmod 0700 "$(readlink -f "$data")"
  as_owner "$bin/initdb" -D "$data" -U "$SUPERUSER" --pwfile="$pwfile" \
    --auth-host=scram-sha-256 --auth-local=reject -E UTF8 --locale=C.UTF-8 \
    >"$HOME_DIR/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$HOME_DIR/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
  as_owner tee -a "$data/postgresql.conf" >/dev/null <<CONF

# mp3mesh's own cluster (scripts/postgres.sh): loopback TCP only, no UNIX socket.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
CONF
  as_owner tee "$data/pg_hba.conf" >/dev/null <<'HBA'
# mp3mesh's own cluster (scripts/postgres.sh): a password, over loopback, and nothing else.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
HBA
  # libpq's password file: read by every client through PGPASSFILE.
  (umask 077 && printf '127.0.0.1:*:*:%s:%s\n' "$SUPERUSER" "$password" >"$PASSFILE")
}

running() {
  local data=$1
  [[ -f "$data/postmaster.pid" ]] && as_owner "$(bindir)/pg_ctl" status -D "$data" >/dev/null 2>&1
}

start() {
  local bin data
  bin=$(bindir)
  make_home
  resolve_home
  data=$HOME_DIR/data
  if [[ ! -f "$data/PG_VERSION" ]]; then
    rm -rf "${data:?}/"*
    initialise "$bin" "$data"
  fi
  [[ -f "$PASSFILE" ]] || die "$PASSFILE is missing: its password is lost (make clean starts over)"
  running "$data" || launch "$bin" "$data"
  ensure_database mp3mesh
}

launch() {
  local bin=$1 data=$2
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "127.0.0.1:$PORT is taken by another process (another checkout's cluster?); stop it first"
  fi
  touch "$LOGFILE"
  [[ "$(id -u)" == 0 ]] && chown postgres: "$LOGFILE"
  log "starting the cluster on 127.0.0.1:$PORT"
  as_owner "$bin/pg_ctl" start -D "$data" -l "$LOGFILE" -w -t 60 >/dev/null \
    || { tail -n 20 "$LOGFILE" >&2; die "the cluster did not start (log: $LOGFILE)"; }
}

# The stack's database (the tests make their own).
ensure_database() {
  local name=$1 psql
  psql=("$(bindir)/psql" -X -w -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -tA)
  export PGPASSFILE=$PASSFILE
  if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]]; then
    log "creating database $name"
    "${psql[@]}" -c "CREATE DATABASE $name" >/dev/null
  fi
}

stop() {
  local data=$HOME_DIR/data
  [[ -e "$data" ]] || return 0
  if running "$data"; then
    log "stopping the cluster"
    as_owner "$(bindir)/pg_ctl" stop -D "$data" -m fast -w -t 60 >/dev/null
  fi
}

# Removes the cluster's data, wherever it is (`make clean`).
remove() {
  stop
  [[ -L "$LINK" ]] && rm -rf "$(readlink -f "$LINK")"
  rm -rf "$LINK"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  remove) remove ;;
  status) running "$HOME_DIR/data" && echo "running on 127.0.0.1:$PORT" || { echo "stopped"; exit 3; } ;;
  *) die "usage: scripts/postgres.sh start|stop|status|remove" ;;
esac
