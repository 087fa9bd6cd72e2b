#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy, pinned by
# k8s/cluster/{versions.env,go.mod,go.sum}, into
# ${XDG_CACHE_HOME:-~/.cache}/mp3mesh/k8s/<KUBE_VERSION>/ and print that directory.
# Reused when present: a stamp records the hash of the pins it was built from, so a bump
# of any pin rebuilds and an unchanged checkout never does (a cold build is ~20 min).
# Built like upstream's hack/lib/golang.sh: CGO_ENABLED=0, -trimpath, -s -w, and the
# version in k8s.io/component-base/version (what `kubectl version` and /version report).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source k8s/cluster/versions.env
root=${XDG_CACHE_HOME:-$HOME/.cache}/mp3mesh/k8s
out=$root/$KUBE_VERSION
stamp=$(cat k8s/cluster/versions.env k8s/cluster/go.mod k8s/cluster/go.sum | sha256sum | cut -d' ' -f1)
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

complete() {
  [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]] || return 1
  local b
  for b in "${bins[@]}"; do [[ -x $out/$b ]] || return 1; done
}
if complete; then echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "k8s-cluster needs Go >= 1.26 (apt-get install golang or go.dev/dl)" >&2; exit 1; }
mkdir -p "$root"
# One build at a time (.ci/run starts one in the background): a second caller waits
# for it, then finds the binaries.
exec 9>"$root/.build.lock"
flock 9
if complete; then echo "$out"; exit 0; fi
tmp=$(mktemp -d "$root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly"

start=$SECONDS
# Commit time of the release, from the proxy's .info: a reproducible buildDate.
info=$(cd k8s/cluster && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" </dev/null)
build_date=$(python3 -c 'import json,sys; print(json.load(open(json.loads(sys.argv[1])["Info"]))["Time"])' "$info")
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
echo "building Kubernetes $KUBE_VERSION and etcd (k8s/cluster/go.mod) into $out" >&2
(cd k8s/cluster && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl </dev/null)
(cd k8s/cluster && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 </dev/null)
# kwok's go.mod has no replace directives: go install at the pinned tag, its own go.sum.
echo "building kwok $KWOK_VERSION" >&2
GOBIN=$tmp GOFLAGS=${GOFLAGS/-mod=readonly/} go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" </dev/null
chmod 755 "$tmp"
echo "$stamp" >"$tmp/.stamp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $((SECONDS - start))s" >&2
echo "$out"
