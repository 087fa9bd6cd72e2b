#!/usr/bin/env bash
# Make sure a Debian base image is in podman's local storage: debian:SUITE-slim, by
# default bookworm, the one the Dockerfile starts from (`make images`); `make fresh-check`
# also asks for trixie (Debian 13), its second bare machine.
#
# Pulled when a registry of container images is reachable; otherwise (none is reachable
# from these machines) made with `debootstrap --variant=minbase SUITE` and imported under
# the official name, so the Dockerfile stays the standard one. Once there, it is reused:
# nothing runs again (`podman rmi docker.io/library/debian:SUITE-slim` to remake it).
#
# The Debian mirror is the one this machine's apt already uses (deb822
# /etc/apt/sources.list.d/*.sources `URIs:`, else one-line /etc/apt/sources.list), not a
# host typed here: a machine that reaches Debian only through its own mirror builds too.
# DEBIAN_MIRROR (and DEBIAN_SECURITY_MIRROR) override it. Like the official image, the
# result's apt sources are SUITE, SUITE-updates and, when a security mirror is known,
# SUITE-security.
#
# Usage: scripts/base_image.sh [SUITE]          (default: bookworm)
#        scripts/base_image.sh --print-mirrors  (what would be used, then exit)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
log() { printf '\033[1m[base-image]\033[0m %s\n' "$*"; }

# Prints "MIRROR SECURITY_MIRROR" (either may be "-") from the machine's apt sources: the
# first enabled `deb` entry for a Debian suite, and the first for its -security pocket.
# Entries for other archives (a vendor's repository, Ubuntu) are skipped by their suite.
apt_mirrors() {  # [apt dir, default /etc/apt]
  local etc=${1:-/etc/apt}
  local files=()
  shopt -s nullglob
  files=("$etc"/sources.list.d/*.sources)
  [[ -f "$etc/sources.list" ]] && files+=("$etc/sources.list")
  files+=("$etc"/sources.list.d/*.list)
  shopt -u nullglob
  [[ ${#files[@]} == 0 ]] && { echo "- -"; return; }
  awk '
    function debian(suite) {
      sub(/-(updates|security|backports|proposed-updates)$/, "", suite)
      sub(/\/updates$/, "", suite)
      return suite ~ /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$/
    }
    function take(uri, suite) {
      sub(/\/+$/, "", uri)
      if (!debian(suite)) return
      if (suite ~ /-security$|\/updates$/) { if (sec == "") sec = uri }
      else if (main == "") main = uri
    }
    function stanza(   n, i, j, u, s) {
      if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") {
        n = split(suites, s, " "); split(uris, u, " ")
        for (i = 1; i <= n; i++) take(u[1], s[i])
      }
      types = uris = suites = enabled = ""
    }
    FNR == 1 { stanza(); deb822 = (FILENAME ~ /\.sources$/) }
    /^[ \t]*#/ { next }
    deb822 && /^[ \t]*$/ { stanza(); next }
    deb822 {
      line = $0; field = tolower(line); sub(/:.*/, "", field); sub(/^[^:]*:[ \t]*/, "", line)
      if (field == "types") types = line
      else if (field == "uris") uris = line
      else if (field == "suites") suites = line
      else if (field == "enabled") enabled = tolower(line)
      next
    }
    $1 == "deb" {
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      take($i, $(i + 1))
    }
    END { stanza(); print (main == "" ? "-" : main), (sec == "" ? "-" : sec) }
  ' "${files[@]}"
}

read -r found_mirror found_security < <(apt_mirrors /etc/apt)
MIRROR=${DEBIAN_MIRROR:-$found_mirror}
SECURITY=${DEBIAN_SECURITY_MIRROR:-$found_security}
if [[ "${1:-}" == --print-mirrors ]]; then
  echo "mirror=$MIRROR security=$SECURITY"
  exit 0
fi

SUITE=${1:-bookworm}
BASE=docker.io/library/debian:$SUITE-slim

if podman image exists "$BASE"; then
  exit 0
fi
if timeout 120 podman pull -q "$BASE" >/dev/null 2>&1; then
  log "pulled $BASE"; exit 0
fi
if [[ "$MIRROR" == - ]]; then
  log "no Debian mirror in this machine's apt sources (/etc/apt/sources.list.d/*.sources," \
    "/etc/apt/sources.list); set DEBIAN_MIRROR=http://your-mirror/debian"
  exit 1
fi
command -v debootstrap >/dev/null || scripts/container_tools.sh
log "$BASE cannot be pulled; making it with debootstrap --variant=minbase $SUITE from $MIRROR"
start=$SECONDS
root=$(mktemp -d /var/tmp/mp3mesh-"$SUITE".XXXXXX)
trap 'rm -rf "$root" "$root.log"' EXIT
if ! timeout 1200 debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1; then
  log "debootstrap $SUITE from $MIRROR failed; its log ends:"
  tail -20 "$root.log" >&2
  exit 1
fi
# The official image's apt sources (deb822), from the same mirrors.
rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$MIRROR" "$SUITE" "$SUITE"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if [[ "$SECURITY" != - ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$SECURITY" "$SUITE"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
} >"$root/etc/apt/sources.list.d/debian.sources"
# What the official slim image leaves out: package lists, caches, docs; and what belongs to
# this host, not the image (podman provides a container's own).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
tar -C "$root" -c . | podman import -q \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL org.mp3mesh.base=\"debootstrap --variant=minbase $SUITE $MIRROR\"" \
  - "$BASE" >/dev/null
log "imported $BASE ($(podman image inspect --format '{{.Size}}' "$BASE" | numfmt --to=iec))" \
  "in $((SECONDS - start)) s"
