"""A real node for the control plane: containerd + runc + kubelet, on a bridge the test owns.

Only the node tier (tests/node) uses it. The recipe and every non-default setting are
explained in docs/install.md ("Try it on a real node"). What the kubelet and the CNI
bridge change on the host (sysctls, iptables chains, cgroups, directories, mounts) is
recorded before start and undone by `HostState.restore`; `HostState.leftovers` lists
whatever is still there.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The test's own pod network. It has no route out: no gateway in the pods, no
# masquerade, and only the host side (BRIDGE_ADDRESS) to talk to.
BRIDGE_NAME = "cloudinfer0"
BRIDGE_SUBNET = "172.30.213.0/24"
BRIDGE_ADDRESS = "172.30.213.1"
NODE_NAME = "cloudinfer-node"
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = Path("/usr/sbin/runc")
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "net.ipv4.ip_forward")
# Created by the kubelet, containerd or the CNI plugins outside the directories we name.
HOST_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/run/containerd"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
)
IPTABLES = ("iptables", "ip6tables")
IPTABLES_TABLES = ("filter", "nat", "mangle")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpu", "memory", "pids")
SKIP_ENV = "CLOUDINFER_SKIP_NODE"


def preflight_problems() -> list[str]:
    """Why this host cannot run a node, with what to do; empty when it can."""
    if platform.system() != "Linux":
        return [f"a node needs Linux (kubelet, containerd, runc); this is {platform.system()}"]
    problems = []
    if os.geteuid() != 0:
        problems.append("a node needs root (containerd, runc, the bridge, iptables): run as root")
    v2 = (CGROUP_ROOT / "cgroup.controllers").is_file()
    available = (
        (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        if v2
        else [p.name for p in CGROUP_ROOT.iterdir()]
        if CGROUP_ROOT.is_dir()
        else []
    )
    missing = [c for c in CGROUP_CONTROLLERS if c not in available]
    if missing:
        problems.append(f"cgroup controllers {', '.join(missing)} are missing under {CGROUP_ROOT}")
    for tool in ("containerd", "ctr", "ip", "iptables"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing: run hack/install-node-deps.sh")
    if not RUNC.exists() or not (CGROUP_ROOT.exists() and (CNI_BIN_DIR / "bridge").exists()):
        problems.append("runc or the CNI plugins are missing: run hack/install-node-deps.sh")
    return problems


def _run(*argv: str, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _kube_chains() -> set[tuple[str, str, str]]:
    chains = set()
    for prog in IPTABLES:
        if shutil.which(prog) is None:
            continue
        for table in IPTABLES_TABLES:
            for line in _run(prog, "-w", "-t", table, "-S", check=False).splitlines():
                if line.startswith("-N KUBE-"):
                    chains.add((prog, table, line.split()[1]))
    return chains


def _kubepods_cgroups() -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    found = [p / "kubepods" for p in CGROUP_ROOT.iterdir() if (p / "kubepods").is_dir()]
    if (CGROUP_ROOT / "kubepods").is_dir():
        found.append(CGROUP_ROOT / "kubepods")
    return found


def _mounts_under(prefixes: tuple[Path, ...]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            points.append(point)
    return points


def _processes_mentioning(needle: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry.name), cmdline.strip()))
    return found


def _processes_in_kubepods() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "/kubepods" in (entry / "cgroup").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@dataclass
class HostState:
    """What a node changes on the host, recorded before it starts."""

    work_dir: Path
    sysctls: dict[str, str] = field(default_factory=dict)
    existing_paths: set[Path] = field(default_factory=set)
    kube_chains: set[tuple[str, str, str]] = field(default_factory=set)
    kubepods: set[Path] = field(default_factory=set)
    netns: set[str] = field(default_factory=set)

    @classmethod
    def record(cls, work_dir: Path) -> HostState:
        netns_dir = Path("/run/netns")
        return cls(
            work_dir=work_dir,
            sysctls={s: _sysctl_path(s).read_text().strip() for s in SYSCTLS},
            existing_paths={p for p in HOST_PATHS if p.exists()}
            | {p for p in (Path("/var/lib/kubelet/device-plugins"),) if p.exists()},
            kube_chains=_kube_chains(),
            kubepods=set(_kubepods_cgroups()),
            netns=set(os.listdir(netns_dir)) if netns_dir.is_dir() else set(),
        )

    def _new_netns(self) -> list[Path]:
        netns_dir = Path("/run/netns")
        if not netns_dir.is_dir():
            return []
        return [netns_dir / n for n in os.listdir(netns_dir) if n not in self.netns]

    def restore(self) -> None:
        """Undo what the node changed; each step runs even if an earlier one failed."""
        for pid, _ in _processes_mentioning(str(self.work_dir)):
            _kill(pid)
        for point in sorted(
            _mounts_under((self.work_dir, *self._new_netns(), Path("/run/containerd"))),
            key=len,
            reverse=True,
        ):
            _run("umount", "-l", point, check=False)
        for ns in self._new_netns():
            ns.unlink(missing_ok=True)
        if Path(f"/sys/class/net/{BRIDGE_NAME}").exists():
            _run("ip", "link", "del", BRIDGE_NAME, check=False)
        self._remove_kube_chains()
        self._remove_kubepods()
        for name, value in self.sysctls.items():
            path = _sysctl_path(name)
            if path.read_text().strip() != value:
                path.write_text(value)
        for path in HOST_PATHS:
            if path not in self.existing_paths:
                shutil.rmtree(path, ignore_errors=True)
        device_plugins = Path("/var/lib/kubelet/device-plugins")
        if device_plugins not in self.existing_paths:
            shutil.rmtree(device_plugins, ignore_errors=True)

    def _remove_kube_chains(self) -> None:
        new = _kube_chains() - self.kube_chains
        names: dict[tuple[str, str], set[str]] = {(prog, table): set() for prog, table, _ in new}
        for prog, table, chain in new:
            names[(prog, table)].add(chain)
        for (prog, table), chains in names.items():
            # First the jumps into our chains from other chains, then the chains.
            for line in _run(prog, "-w", "-t", table, "-S", check=False).splitlines():
                parts = line.split()
                jumps_in = "-j" in parts and parts[parts.index("-j") + 1] in chains
                if parts[:1] == ["-A"] and parts[1] not in chains and jumps_in:
                    _run(prog, "-w", "-t", table, "-D", *parts[1:], check=False)
            for chain in chains:
                _run(prog, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(prog, "-w", "-t", table, "-X", chain, check=False)

    def _remove_kubepods(self) -> None:
        for top in set(_kubepods_cgroups()) - self.kubepods:
            # A cgroup can be removed only when empty; a just-killed task may need a moment.
            for _ in range(50):
                dirs = sorted(
                    (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
                )
                for d in [*dirs, top]:
                    with contextlib.suppress(OSError):
                        d.rmdir()
                if not top.exists():
                    break
                time.sleep(0.1)

    def leftovers(self) -> list[str]:
        """What the node left behind; empty after a clean teardown."""
        found = [
            f"process {pid}: {cmd[:160]}" for pid, cmd in _processes_mentioning(str(self.work_dir))
        ]
        found += [f"process {pid} in a kubepods cgroup" for pid in _processes_in_kubepods()]
        found += [f"mount {m}" for m in _mounts_under((self.work_dir, Path("/run/containerd")))]
        found += [f"network namespace {n}" for n in self._new_netns()]
        if Path(f"/sys/class/net/{BRIDGE_NAME}").exists():
            found.append(f"bridge {BRIDGE_NAME}")
        found += [f"{p} -t {t}: chain {c}" for p, t, c in _kube_chains() - self.kube_chains]
        found += [f"cgroup {c}" for c in set(_kubepods_cgroups()) - self.kubepods]
        for name, value in self.sysctls.items():
            now = _sysctl_path(name).read_text().strip()
            if now != value:
                found.append(f"sysctl {name} = {now} (was {value})")
        found += [f"path {p}" for p in HOST_PATHS if p.exists() and p not in self.existing_paths]
        device_plugins = Path("/var/lib/kubelet/device-plugins")
        if device_plugins.exists() and device_plugins not in self.existing_paths:
            found.append(f"path {device_plugins}")
        return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def create_bridge() -> None:
    """The pod network's bridge, with the host side's address and nothing else."""
    if Path(f"/sys/class/net/{BRIDGE_NAME}").exists():
        raise RuntimeError(
            f"bridge {BRIDGE_NAME} already exists: another node tier is running, or one was "
            f"interrupted. Remove it with `ip link del {BRIDGE_NAME}`."
        )
    prefix = BRIDGE_SUBNET.split("/")[1]
    _run("ip", "link", "add", BRIDGE_NAME, "type", "bridge")
    _run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/{prefix}", "dev", BRIDGE_NAME)
    _run("ip", "link", "set", BRIDGE_NAME, "up")


def cni_config(ipam_dir: Path) -> str:
    """bridge + host-local: no gateway (so no default route in pods), no masquerade."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "cloudinfer-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE_NAME,
                    "isGateway": False,
                    "isDefaultGateway": False,
                    "ipMasq": False,
                    "hairpinMode": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": BRIDGE_SUBNET, "rangeStart": "172.30.213.10"}]],
                        "routes": [],
                        "dataDir": str(ipam_dir),
                    },
                }
            ],
        },
        indent=2,
    )


def containerd_config(state_dir: Path, cni_conf_dir: Path, sandbox_image: str) -> str:
    return f"""version = 2
root = "{state_dir / "root"}"
state = "{state_dir / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{state_dir / "containerd.sock"}"
[ttrpc]
  address = "{state_dir / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state_dir / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{RUNC}"
        Root = "{state_dir / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
"""


def kubelet_config(
    work_dir: Path, containerd_socket: Path, client_ca: Path, healthz_port: int
) -> dict[str, object]:
    endpoint = f"unix://{containerd_socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # cgroup v2 cannot be enabled on this kind of machine; containerd 1.6 cannot
        # report its cgroup driver.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        "address": BRIDGE_ADDRESS,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        # Images are imported, never pulled: nothing may be collected or evicted.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "podLogsDir": str(work_dir / "pod-logs"),
        "volumePluginDir": str(work_dir / "volume-plugins"),
        "registerNode": True,
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
    }
