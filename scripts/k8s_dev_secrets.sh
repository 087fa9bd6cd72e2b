#!/usr/bin/env bash
# Write k8s/overlays/dev/secrets.env (git-ignored) from secrets.env.example, with a new
# random password for PostgreSQL and RabbitMQ (the same one in their URLs), and
# k8s/overlays/dev/jwt-signing-key.pem (git-ignored), auth's Ed25519 signing key. An
# existing file is kept: delete it to make new secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
key=k8s/overlays/dev/jwt-signing-key.pem
if [[ -f $key ]]; then
  echo "$key exists; keeping it"
else
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$key")
  echo "wrote $key"
fi
out=k8s/overlays/dev/secrets.env
[[ -f $out ]] && { echo "$out exists; keeping it"; exit 0; }
python3 - "$out" <<'PY'
import secrets, sys
pg, mq = (secrets.token_urlsafe(n) for n in (24, 24))
text = open("k8s/overlays/dev/secrets.env.example").read()
text = text.replace("change-me-postgres", pg).replace("change-me-rabbitmq", mq)
assert "change-me" not in text
with open(sys.argv[1], "x") as f:
    f.write(text)
PY
chmod 600 "$out"
echo "wrote $out"
