#!/usr/bin/env bash
# Installs what the node tier (tests/node) needs from Debian when it is missing:
# containerd and runc (the container runtime), the CNI plugins, iptables, and the
# image tools (mmdebstrap, buildah, busybox-static). Idempotent; no Docker.
# Usage: hack/install-node-deps.sh
set -euo pipefail

PACKAGES=(runc containerd containernetworking-plugins iptables mmdebstrap umoci skopeo buildah busybox-static)
# One command (or file) per package, to tell whether it is installed.
PROBES=(/usr/sbin/runc /usr/bin/containerd /usr/lib/cni/bridge /usr/sbin/iptables /usr/bin/mmdebstrap
        /usr/bin/umoci /usr/bin/skopeo /usr/bin/buildah /bin/busybox)

log() { printf '[node-deps] %s\n' "$*" >&2; }
die() { printf '[node-deps] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
for i in "${!PACKAGES[@]}"; do
  [[ -e "${PROBES[$i]}" ]] || missing+=("${PACKAGES[$i]}")
done
if ((${#missing[@]} == 0)); then
  log "all present"
  exit 0
fi

[[ "$(uname -s)" == Linux ]] || die "the node tier needs Linux (a kubelet, containerd and runc); this is $(uname -s)."
command -v apt-get >/dev/null 2>&1 \
  || die "missing ${missing[*]}, and this is not a Debian-like system. Install them with your package manager."
[[ "$(id -u)" == 0 ]] \
  || die "missing ${missing[*]}; installing them needs root: sudo apt-get install -y ${missing[*]}"
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
