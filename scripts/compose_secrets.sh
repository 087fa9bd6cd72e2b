#!/usr/bin/env bash
# Secrets for compose.yaml, made the way `make k8s-dev-secrets` makes the dev overlay's:
# the env file compose reads (default .env, git-ignored) with new random passwords for
# PostgreSQL and RabbitMQ, and auth's Ed25519 signing key (default
# var/compose/jwt-signing-key.pem, in a directory only you can enter; the file itself is
# readable by all, so that auth's unprivileged user in the container can read it). An
# existing file is kept: delete it to make new secrets (and `docker compose down -v`, as
# the databases keep the passwords they were created with).
# Usage: scripts/compose_secrets.sh [ENV_FILE [KEY_FILE]]
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${1:-.env}
key=${2:-var/compose/jwt-signing-key.pem}
if [[ -f $key ]]; then
  echo "$key exists; keeping it"
else
  mkdir -p "$(dirname "$key")"
  chmod 700 "$(dirname "$key")"
  openssl genpkey -algorithm ed25519 -out "$key"
  chmod 644 "$key"
  echo "wrote $key"
fi
[[ -f $env_file ]] && { echo "$env_file exists; keeping it"; exit 0; }
# URL-safe characters only: the passwords go into URLs as they are.
password() { openssl rand -base64 32 | tr -dc 'A-Za-z0-9' | head -c 32; }
(
  umask 077
  {
    echo "# compose.yaml's secrets (scripts/compose_secrets.sh); never committed."
    echo "POSTGRES_PASSWORD=$(password)"
    echo "RABBITMQ_PASSWORD=$(password)"
    # Relative to the directory of compose.yaml.
    case $key in /*) echo "JWT_SIGNING_KEY_PATH=$key" ;; *) echo "JWT_SIGNING_KEY_PATH=./$key" ;; esac
  } >"$env_file"
)
echo "wrote $env_file"
