"""The launcher people use (`make cluster`): ready, versions match, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import ControlPlaneError, find_bin_dir
from support import Cluster, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _controlplane(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_client_and_server_report_the_same_release(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    client_version = versions["clientVersion"]["gitVersion"]
    assert client_version == versions["serverVersion"]["gitVersion"]
    # Built with version ldflags: helm parses this for kubeVersion constraints.
    assert client_version.startswith("v1.")
    assert "$Format" not in client_version


def test_detached_plane_serves_readyz_and_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    up = _controlplane("up", "--detach", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout
    pids = json.loads((state / "ready.json").read_text())
    component_pids = [pids[name] for name in ("etcd", "kube-apiserver", "kube-controller-manager")]
    supervisor_pid = int((state / "supervisor.pid").read_text())
    try:
        kubectl = find_bin_dir() / "kubectl"
        readyz = subprocess.run(
            [str(kubectl), f"--kubeconfig={state / 'kubeconfig'}", "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert readyz.stdout.strip() == "ok", readyz.stderr
    finally:
        down = _controlplane("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    for pid in [supervisor_pid, *component_pids]:
        assert not _alive(pid), f"pid {pid} survived `down`"


def test_killing_the_supervisor_takes_the_components_with_it(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    up = _controlplane("up", "--detach", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    pids = json.loads((state / "ready.json").read_text())
    supervisor_pid = int((state / "supervisor.pid").read_text())
    os.kill(supervisor_pid, signal.SIGKILL)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        wait_for(lambda pid=pids[name]: not _alive(pid), timeout=20, what=f"{name} to exit")


def test_missing_binaries_fail_with_directions(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match="make k8s"):
        find_bin_dir(tmp_path)
