#!/bin/bash
# The official rabbitmq image's start-up, the parts compose.yaml uses: the default
# account from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (written to rabbitmq.conf;
# allowed to connect from anywhere, as there), then the server as the rabbitmq user with
# its logs on stdout.
set -euo pipefail
if [[ $(id -u) == 0 ]]; then
  mkdir -p /var/lib/rabbitmq /etc/rabbitmq
  {
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
  } >/etc/rabbitmq/rabbitmq.conf
  chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf
  chmod 600 /etc/rabbitmq/rabbitmq.conf
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq \
    "$0" "$@"
fi
export RABBITMQ_LOGS=- RABBITMQ_MNESIA_BASE=/var/lib/rabbitmq/mnesia
if [[ $1 == rabbitmq-server ]]; then
  shift
  exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
