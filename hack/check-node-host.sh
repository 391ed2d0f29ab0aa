#!/usr/bin/env bash
# Can this host run the node tier (a kubelet, containerd and runc)? Fails with directions,
# and names the opt-out, when it cannot. Usage: hack/check-node-host.sh
set -uo pipefail

problems=()
if [[ "$(uname -s)" != Linux ]]; then
  problems+=("it needs Linux; this is $(uname -s)")
else
  [[ "$(id -u)" == 0 ]] || problems+=("it needs root (containerd, runc, a bridge, iptables): run make as root, e.g. in a Linux VM")
  for c in cpu memory pids; do
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
      grep -qw "$c" /sys/fs/cgroup/cgroup.controllers || problems+=("the $c cgroup controller is not enabled")
    else
      [[ -d /sys/fs/cgroup/$c ]] || problems+=("the $c cgroup controller is not mounted under /sys/fs/cgroup")
    fi
  done
fi
if ((${#problems[@]})); then
  {
    echo "make test-node: this host cannot run the node tier (a real kubelet + containerd + runc):"
    printf '  - %s\n' "${problems[@]}"
    echo "Run it on a Linux machine or VM as root (docs/install.md, 'Try it on a real node'),"
    echo "or run everything else with CLOUDINFER_SKIP_NODE=1 make test (the run then says that"
    echo "the node tier did not run)."
  } >&2
  exit 1
fi
