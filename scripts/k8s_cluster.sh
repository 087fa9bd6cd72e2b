#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, loopback only, for `make k8s-e2e`:
#   scripts/k8s_cluster.sh up      build (cached) and start etcd, kube-apiserver,
#                                  kube-controller-manager, kube-scheduler and kwok with
#                                  three fake nodes; prints the kubeconfig's path
#   scripts/k8s_cluster.sh down    stop all of it; nothing is left running
#   scripts/k8s_cluster.sh status  which components run
#   scripts/k8s_cluster.sh env     `export KUBECONFIG=... PATH=...` for a shell (eval)
# Why this and not kind/minikube: no container engine here, and what the manifests must
# meet is the API server and its controllers: admission (Pod Security), defaulting,
# server-side apply, the workload controllers, the scheduler, PV binding, evictions.
# kwok plays the kubelets: nodes that heartbeat, pods that become Running and Ready.
# Everything listens on 127.0.0.1, on ports apart from the stack's: etcd 12379/12380,
# apiserver 16443, controller-manager 16257, scheduler 16259. A default StorageClass
# `static` binds claims to PersistentVolumes made beforehand. Each `up` starts from an
# empty etcd and a new PKI under var/k8s-cluster/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dir=$repo/var/k8s-cluster
pki=$dir/pki
API_PORT=16443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
KCM_PORT=16257
SCHED_PORT=16259
NODES=(kwok-node-1 kwok-node-2 kwok-node-3)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "k8s-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

pid_of() { # the pid of a running component, or nothing
  local f=$dir/run/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

stop() {
  local c pid i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[i]}
    pid=$(pid_of "$c")
    [[ -n $pid ]] || { rm -f "$dir/run/$c.pid"; continue; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$c ($pid) did not stop in 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/run/$c.pid"
    log "stopped $c"
  done
}

status() {
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    pid=$(pid_of "$c")
    if [[ -n $pid ]]; then echo "$c running ($pid)"; else echo "$c stopped"; rc=1; fi
  done
  return $rc
}

# wait_for WHAT SECONDS COMMAND...: poll COMMAND until it succeeds, or fail naming WHAT
# and the log to read.
wait_for() {
  local what=$1 secs=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not up after ${secs}s; see $dir/logs/"
    sleep 0.5
  done
}

start() { # start NAME BINARY ARGS...: in the background, its own process group, logged
  local name=$1
  shift
  setsid "$@" </dev/null >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/run/$name.pid"
}

cert() { # cert NAME CN O [SAN]: a key and a certificate signed by the cluster's CA
  local name=$1 cn=$2 o=$3 san=${4:-} ext=$pki/$1.ext
  local subj="/CN=$cn"
  [[ -z $o ]] || subj="/O=$o$subj"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" \
    -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n $san ]]; then
      echo "extendedKeyUsage=serverAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 7 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$ext"
}

make_pki() {
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -days 7 -subj "/CN=mp3mesh-k8s-e2e-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin kubernetes-admin system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  cert kwok kwok system:masters
  # ServiceAccount tokens: the apiserver signs them with this key, checks them with its
  # public half, and the controller-manager signs the legacy ones with it too.
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
}

kubeconfig() { # kubeconfig NAME USER: a kubeconfig for one client certificate
  local name=$1 user=$2
  cat >"$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: mp3mesh-e2e
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $pki/ca.crt
users:
  - name: $user
    user:
      client-certificate: $pki/$name.crt
      client-key: $pki/$name.key
contexts:
  - name: mp3mesh-e2e
    context: {cluster: mp3mesh-e2e, user: $user}
current-context: mp3mesh-e2e
EOF
}

up() {
  local bin
  bin=$(scripts/k8s_cluster_build.sh)
  command -v openssl >/dev/null || die "needs openssl (apt-get install openssl)"
  if [[ -n $(pid_of kube-apiserver) || -n $(pid_of etcd) ]]; then
    log "already running; stopping it first"
    stop
  fi
  for port in $API_PORT $ETCD_PORT $ETCD_PEER_PORT $KCM_PORT $SCHED_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is in use by another process"
    fi
  done
  rm -rf "$dir"
  mkdir -p "$dir/logs" "$dir/run" "$dir/etcd"
  # A start that fails half-way stops what it started (the logs stay for reading).
  trap 'stop' EXIT
  make_pki
  kubeconfig admin kubernetes-admin
  kubeconfig controller-manager system:kube-controller-manager
  kubeconfig scheduler system:kube-scheduler
  kubeconfig kwok kwok
  local kubectl=("$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig")

  start etcd "$bin/etcd" --name=e2e --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="e2e=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls="" \
    --unsafe-no-fsync --quota-backend-bytes=$((2 << 30)) --log-level=warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  # The default admission plugins (PodSecurity among them) plus NodeRestriction, as
  # kubeadm runs it; authorization Node,RBAC.
  start kube-apiserver "$bin/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port=$API_PORT --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer="https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --api-audiences="https://kubernetes.default.svc.cluster.local" \
    --service-cluster-ip-range=10.96.0.0/16 --service-node-port-range=30000-32767 \
    --allow-privileged=false --profiling=false --endpoint-reconciler-type=none
  wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"

  # All default controllers (deployment, replicaset, statefulset, job, disruption, HPA,
  # garbage collector, PV binder, node lifecycle, endpoints, namespace, serviceaccount...).
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=$KCM_PORT --leader-elect=false \
    --use-service-account-credentials=true --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" --controllers='*' \
    --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=$SCHED_PORT --leader-elect=false --profiling=false
  wait_for kube-controller-manager 60 curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 curl -skf "https://127.0.0.1:$SCHED_PORT/healthz"

  start kwok "$bin/kwok" --kubeconfig="$dir/kwok.kubeconfig" --config="$repo/k8s/cluster/kwok.yaml" \
    --manage-all-nodes=true --node-ip=127.0.0.1 --node-lease-duration-seconds=40
  local node
  for node in "${NODES[@]}"; do
    "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
  done
  # The default StorageClass, as kind's and minikube's clusters have one: volumes bound
  # when a pod first uses them (WaitForFirstConsumer), from PersistentVolumes made
  # beforehand (no provisioner here). With Immediate binding and no class, the scheduler
  # sees a StatefulSet's pod before its claim is bound and reports FailedScheduling.
  "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: static
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=60s >/dev/null ||
    die "the kwok nodes did not become Ready; see $dir/logs/kwok.log"
  # The controller-manager is working once it has made the default ServiceAccount.
  wait_for "the controller-manager's ServiceAccount controller" 60 \
    "${kubectl[@]}" -n default get serviceaccount default
  trap - EXIT
  log "up: ${#NODES[@]} nodes; KUBECONFIG=$dir/admin.kubeconfig, kubectl in $bin"
  echo "$dir/admin.kubeconfig"
}

case ${1:-} in
  up) up ;;
  down) stop ;;
  status) status ;;
  env)
    bin=$(scripts/k8s_cluster_build.sh)
    # shellcheck disable=SC2016  # $PATH is for the shell that evals this
    printf 'export KUBECONFIG=%q PATH=%q:$PATH\n' "$dir/admin.kubeconfig" "$bin"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
