#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl,
# etcd and helm from Go modules (one module graph: hack/k8s) into a version-keyed
# cache outside the clone. Idempotent: only missing binaries are built.
# Usage: hack/build-k8s.sh  (prints the bin dir on the last line)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${CLOUDINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudinfer}"
BIN="$CACHE_ROOT/k8s-$K8S_VERSION-helm-$HELM_VERSION/bin"

log() { printf '[build-k8s] %s\n' "$*" >&2; }
die() { printf '[build-k8s] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found. Install Go >= 1.26 (https://go.dev/doc/install) or 'apt-get install golang'."

all_present() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm; do
    [[ -x "$BIN/$b" ]] || return 1
  done
  [[ -f "$BIN/.complete" ]]
}

if all_present; then
  log "cache hit: $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
rm -f "$BIN/.complete"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
LDF=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
LDF="$LDF -s -w"

build_k8s() {
  local target="$1" pkg="$2"
  if [[ -x "$BIN/$target" ]]; then log "$target already built"; return; fi
  log "building $target ($pkg @ $K8S_VERSION); the first build takes many minutes"
  (cd "$HERE/k8s" && go build -trimpath -ldflags "$LDF" -o "$BIN/$target.tmp" "$pkg") \
    || die "go build of $target failed (module hack/k8s, $K8S_VERSION). See the compiler output above."
  mv "$BIN/$target.tmp" "$BIN/$target"
}

build_k8s etcd ./cmd/etcd
build_k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build_k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build_k8s kubectl k8s.io/kubernetes/cmd/kubectl
# The node tier's kubelet and scheduler (tests/node).
build_k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build_k8s kubelet k8s.io/kubernetes/cmd/kubelet

if [[ ! -x "$BIN/helm" ]]; then
  log "building helm ($HELM_VERSION)"
  (cd "$HERE/helm" && go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm) \
    || die "go build of helm $HELM_VERSION failed (module hack/helm). See the compiler output above."
  mv "$BIN/helm.tmp" "$BIN/helm"
fi

touch "$BIN/.complete"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
