#!/usr/bin/env bash
# Builds prometheus and promtool from Go modules into a version-keyed cache outside
# the clone, for the observability tests. Idempotent: a warm cache is a no-op.
# Usage: hack/build-prometheus.sh  (prints the bin dir on the last line)
#
# Built with the tag remove_all_sd: the tests scrape static targets only, and
# leaving out the cloud service-discovery plugins (AWS, Azure, GCE, Kubernetes, ...)
# roughly halves the build (file and HTTP discovery stay; see plugins/*.go upstream).
# The web UI assets are not embedded (no builtinassets tag); the HTTP API is complete.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v3.16.0}"
# Prometheus 3.x.y is published as the Go module version v0.3xx.y.
MODULE_VERSION="v0.$(echo "${PROMETHEUS_VERSION#v}" | awk -F. '{printf "%d%02d.%d", $1, $2, $3}')"
CACHE_ROOT="${CLOUDINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudinfer}"
BIN="$CACHE_ROOT/prometheus-$PROMETHEUS_VERSION/bin"

log() { printf '[build-prometheus] %s\n' "$*" >&2; }
die() { printf '[build-prometheus] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$BIN/prometheus" && -x "$BIN/promtool" && -f "$BIN/.complete" ]]; then
  log "cache hit: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go not found. Install Go >= 1.26.7 (https://go.dev/doc/install) or 'apt-get install golang', then rerun hack/build-prometheus.sh."
grep -Eq "github.com/prometheus/prometheus $MODULE_VERSION( |\$)" "$HERE/prometheus/go.mod" \
  || die "hack/prometheus/go.mod does not require github.com/prometheus/prometheus $MODULE_VERSION (PROMETHEUS_VERSION=$PROMETHEUS_VERSION). Run: (cd hack/prometheus && go get github.com/prometheus/prometheus/cmd/prometheus@$MODULE_VERSION github.com/prometheus/prometheus/cmd/promtool@$MODULE_VERSION)"

mkdir -p "$BIN"
rm -f "$BIN/.complete"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)
LDF="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v} -X github.com/prometheus/common/version.Branch=release -X github.com/prometheus/common/version.BuildDate=19700101-00:00:00"

build() {
  local target="$1"
  if [[ -x "$BIN/$target" ]]; then log "$target already built"; return; fi
  log "building $target ($PROMETHEUS_VERSION); the first build takes several minutes"
  (cd "$HERE/prometheus" && go build -trimpath -tags remove_all_sd -ldflags "$LDF" \
      -o "$BIN/$target.tmp" "github.com/prometheus/prometheus/cmd/$target") \
    || die "go build of $target $PROMETHEUS_VERSION failed (module hack/prometheus). See the compiler output above."
  mv "$BIN/$target.tmp" "$BIN/$target"
}

build promtool
build prometheus

touch "$BIN/.complete"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
