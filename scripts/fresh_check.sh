#!/usr/bin/env bash
# `make fresh-check`: does the README's first promise hold for a new user? On a bare Debian
# (what a person starts from: minbase + git, make, python3, python3-venv, ca-certificates,
# as root, nothing else: no PostgreSQL, no RabbitMQ, no npm), clone this repository and run
# `make demo`, then check what it promises: a real MP3 and the email.
#
# Our own machines come with things a new user's does not (PostgreSQL, Node, caches,
# settings), so a test on them cannot see what a new machine lacks. Each Debian release
# here gets a container of its own, made from the debootstrap base of scripts/base_image.sh
# (bookworm = Debian 12, and trixie = Debian 13 when its base can be made from the mirror;
# when it cannot, why is said and the suite is skipped). What is checked is HEAD as
# committed: the host's repository is mounted read-only and cloned inside, so a file that
# was never committed cannot make the check pass.
#
# The container has a network namespace of its own (slirp4netns, never podman's bridge) to
# reach Debian's packages, PyPI and npm. The host's CA bundle is mounted read-only at
# /host-ca.crt (TLS to the registries may be intercepted on the way) and appended to the
# container's bundle once its ca-certificates package has written that; pip and npm are
# pointed at it. Nothing prompts: CI=true, stdin is /dev/null, every step has a time limit.
# On failure the tail of the step's log is printed (full logs: var/fresh-check/). The
# container is always removed; the base images stay in podman's storage for the next run.
#
# Usage: scripts/fresh_check.sh [SUITE...]   (default: bookworm trixie)
# Env: FRESH_CHECK_CA (default $PIP_CERT, else /etc/ssl/certs/ca-certificates.crt),
#      FRESH_CHECK_DEMO_TIMEOUT (seconds for `make demo`, default 2400).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
log() { printf '\033[1m[fresh-check]\033[0m %s\n' "$*"; }
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

suites=("$@")
[[ ${#suites[@]} == 0 ]] && suites=(bookworm trixie)
host_ca=${FRESH_CHECK_CA:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
demo_timeout=${FRESH_CHECK_DEMO_TIMEOUT:-2400}
logs=$PWD/var/fresh-check
mkdir -p "$logs"
[[ -f "$host_ca" ]] || { log "no CA bundle at $host_ca (set FRESH_CHECK_CA)"; exit 1; }

rev=$(git rev-parse HEAD)
repo=$(cd "$(git rev-parse --git-common-dir)" && pwd)  # a worktree's objects live there
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  log "note: uncommitted changes are not part of the check (it runs $(git rev-parse --short HEAD))"
fi

scripts/container_tools.sh

container=""
cleanup() {
  if [[ -n "$container" ]]; then
    podman rm -f -t 5 "$container" >/dev/null 2>&1 || true
    container=""
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The steps inside the container, each run with `podman exec`.
read -r -d '' step_machine <<'SH' || true
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends git make python3 python3-venv ca-certificates
# ca-certificates has just written its bundle; the host's CAs go after them.
cat /host-ca.crt >>/etc/ssl/certs/ca-certificates.crt
. /etc/os-release; echo "$PRETTY_NAME: $(python3 --version), $(git --version), $(make --version | head -1)"
SH
read -r -d '' step_clone <<'SH' || true
set -euo pipefail
git -c safe.directory='*' clone -q --no-hardlinks --no-checkout /src.git /root/mp3mesh
git -C /root/mp3mesh -c advice.detachedHead=false checkout -q "$REV"
git -C /root/mp3mesh log --oneline -1
SH
read -r -d '' step_demo <<'SH' || true
set -euo pipefail
cd /root/mp3mesh
make demo </dev/null
SH
# What the demo promises, checked on the files it leaves: an MP3 that is one (its frames
# walked from the first to the last, about the sample's 12 s, and decoded without error by
# the ffmpeg the project installs), and the email the notification service sent to the
# demo user through the real SMTP server (aiosmtpd's maildir, var/mail/new).
read -r -d '' step_check <<'SH' || true
set -euo pipefail
cd /root/mp3mesh
python3 - <<'PY'
import email, email.policy, pathlib, sys

mp3 = pathlib.Path("var/demo/sample.mp3")
if not mp3.is_file():
    sys.exit(f"FAIL: no MP3 at {mp3}")
data = mp3.read_bytes()
pos = 0
if data[:3] == b"ID3":  # ID3v2 tag: 10-byte header, then a syncsafe size
    pos = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
BITRATES = {  # kbit/s by (MPEG-1?, index), layer III
    True: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    False: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}
frames, seconds, first = 0, 0.0, None
while pos + 4 <= len(data):
    h = int.from_bytes(data[pos : pos + 4], "big")
    version, layer = (h >> 19) & 3, (h >> 17) & 3
    br, sr = (h >> 12) & 15, (h >> 10) & 3
    if h >> 21 != 0x7FF or version == 1 or layer != 1 or br in (0, 15) or sr == 3:
        break  # not (or no longer) an MPEG layer III frame header
    mpeg1 = version == 3
    rate = RATES[version][sr]
    size = (144 if mpeg1 else 72) * BITRATES[mpeg1][br] * 1000 // rate + ((h >> 9) & 1)
    first = first or (pos, rate, BITRATES[mpeg1][br])
    frames += 1
    seconds += (1152 if mpeg1 else 576) / rate
    pos += size
if first is None:
    sys.exit(f"FAIL: {mp3} ({len(data)} bytes, starts {data[:4]!r}) has no MPEG audio frame")
tail = len(data) - pos
if tail > 128 + 1024 or not 10 <= seconds <= 14:  # an ID3v1 tag or padding may follow
    sys.exit(f"FAIL: {mp3}: {frames} frames, {seconds:.1f} s, {tail} bytes after them (12 s expected)")
print(f"MP3 ok: {mp3}, {len(data)} bytes, {frames} MPEG layer III frames from byte {first[0]},"
      f" {first[1]} Hz, {first[2]} kbit/s, {seconds:.2f} s")

mails = []
for path in sorted(pathlib.Path("var/mail/new").glob("*")):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    if msg["X-Mp3mesh-Job"] and "demo@example.com" in str(msg["To"]):
        mails.append((path, msg))
if not mails:
    sys.exit("FAIL: no email to demo@example.com with an X-Mp3mesh-Job header in var/mail/new")
path, msg = mails[-1]
body = msg.get_body(("plain", "html"))
content = body.get_content().strip() if body else ""
if not msg["Subject"] or not content:
    sys.exit(f"FAIL: {path}: empty subject or body")
print(f"Mail ok: {path}: From {msg['From']}, To {msg['To']}, Subject {msg['Subject']!r},"
      f" job {msg['X-Mp3mesh-Job']}, {len(content)} characters of text")
PY
ffmpeg=$(.venv/bin/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
errors=$("$ffmpeg" -nostdin -v error -i var/demo/sample.mp3 -f null - 2>&1) || { echo "FAIL: ffmpeg cannot decode the MP3: $errors"; exit 1; }
[[ -z "$errors" ]] || { echo "FAIL: ffmpeg decoded the MP3 with errors: $errors"; exit 1; }
"$ffmpeg" -nostdin -hide_banner -i var/demo/sample.mp3 2>&1 | grep -E 'Duration|Audio:' || true
echo "MP3 decodes cleanly with ffmpeg"
echo "Versions: $("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version)," \
  "$(dpkg-query -W -f '${Package} ${Version}, ' rabbitmq-server erlang-base nodejs npm)$(.venv/bin/python --version)"
SH

# run_step SUITE NAME TIMEOUT SCRIPT: one step in the container, its output in the suite's
# log; the time it took is printed; on failure, the end of the log (and of the mesh's own
# log, when the demo got that far) and a non-zero status.
run_step() {
  local suite=$1 name=$2 limit=$3 script=$4 start=$SECONDS status=0
  printf '\n===== %s (%s) =====\n' "$name" "$(date -u +%H:%M:%S)" >>"$logs/$suite.log"
  timeout --kill-after=15 "$limit" podman exec -e REV="$rev" "$container" bash -c "$script" \
    </dev/null >>"$logs/$suite.log" 2>&1 || status=$?
  local took=$((SECONDS - start))
  phase_times+=("$name $(elapsed $took)")
  if [[ $status != 0 ]]; then
    [[ $status == 124 ]] && log "$suite: $name timed out after $(elapsed "$limit")"
    log "$suite: $name FAILED (exit $status) after $(elapsed $took); the end of its log ($logs/$suite.log):"
    sed -n "/^===== $name /,\$p" "$logs/$suite.log" | tail -n 60 | sed 's/^/    /' >&2
    if [[ $name == demo ]] && podman exec "$container" test -s /root/mp3mesh/var/demo-stack.log; then
      log "$suite: the end of the mesh's log (var/demo-stack.log in the container):"
      podman exec "$container" tail -n 30 /root/mp3mesh/var/demo-stack.log 2>&1 | sed 's/^/    /' >&2 || true
    fi
    return 1
  fi
  log "$suite: $name ok in $(elapsed $took)"
}

summary=()
failed=0
total_start=$SECONDS
for suite in "${suites[@]}"; do
  suite_start=$SECONDS
  phase_times=()
  : >"$logs/$suite.log"
  log "$suite: base image (scripts/base_image.sh $suite)"
  start=$SECONDS
  if ! scripts/base_image.sh "$suite" >>"$logs/$suite.log" 2>&1; then
    tail -n 25 "$logs/$suite.log" | sed 's/^/    /' >&2
    if [[ $suite == bookworm ]]; then
      log "$suite: FAILED: its base image could not be made"; failed=1
      summary+=("$suite: FAILED (no base image)")
    else
      log "$suite: SKIPPED: its base could not be made from Debian's packages (above)"
      summary+=("$suite: SKIPPED (no base image: see above)")
    fi
    continue
  fi
  phase_times+=("base $(elapsed $((SECONDS - start)))")
  log "$suite: base ready in $(elapsed $((SECONDS - start)))"

  container=mp3mesh-fresh-$suite-$$
  start=$SECONDS
  podman run -d --name "$container" --init --network=slirp4netns \
    --volume "$repo:/src.git:ro" --volume "$host_ca:/host-ca.crt:ro" \
    --env CI=true --env PIP_CERT=/host-ca.crt --env NODE_EXTRA_CA_CERTS=/host-ca.crt \
    --env PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}" \
    "docker.io/library/debian:$suite-slim" sleep infinity >/dev/null
  phase_times+=("start $(elapsed $((SECONDS - start)))")
  log "$suite: container $container (network slirp4netns); steps logged to $logs/$suite.log"
  if run_step "$suite" machine 900 "$step_machine" \
    && run_step "$suite" clone 300 "$step_clone" \
    && run_step "$suite" demo "$demo_timeout" "$step_demo" \
    && run_step "$suite" check 300 "$step_check"; then
    sed -n '/===== check/,$p' "$logs/$suite.log" | grep -E '^(MP3|Mail|Versions|  Duration|  Stream)' | sed 's/^ */    /'
    result="ok"
  else
    result="FAILED"; failed=1
  fi
  start=$SECONDS
  cleanup
  phase_times+=("remove $(elapsed $((SECONDS - start)))")
  phases=$(printf '%s, ' "${phase_times[@]}")
  summary+=("$suite: $result in $(elapsed $((SECONDS - suite_start))) (${phases%, })")
done

log "summary (HEAD $(git rev-parse --short HEAD)):"
for line in "${summary[@]}"; do log "  $line"; done
log "total $(elapsed $((SECONDS - total_start)))"
if podman ps -a --format '{{.Names}}' | grep -q "^mp3mesh-fresh-.*-$$\$"; then
  log "a container of this run is still there"; exit 1
fi
exit $failed
