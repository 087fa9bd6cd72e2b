#!/usr/bin/env bash
# Write k8s/overlays/dev/secrets.env (git-ignored) from secrets.env.example, with a new
# random password for PostgreSQL and RabbitMQ (the same one in their URLs) and a random
# JWT key. An existing file is kept: delete it to make new secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
out=k8s/overlays/dev/secrets.env
[[ -f $out ]] && { echo "$out exists; keeping it"; exit 0; }
python3 - "$out" <<'PY'
import secrets, sys
pg, mq, jwt = (secrets.token_urlsafe(n) for n in (24, 24, 48))
text = open("k8s/overlays/dev/secrets.env.example").read()
text = text.replace("change-me-postgres", pg).replace("change-me-rabbitmq", mq)
text = text.replace("change-me-to-at-least-32-random-bytes-of-secret", jwt)
assert "change-me" not in text
with open(sys.argv[1], "x") as f:
    f.write(text)
PY
chmod 600 "$out"
echo "wrote $out"
