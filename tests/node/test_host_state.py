"""The teardown check is not vacuous: HostState sees what a node leaves and restores it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from controlplane import node as nodes

FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def test_leftovers_lists_a_process_a_bridge_and_a_sysctl_and_restore_clears_them(
    tmp_path: Path,
) -> None:
    state = nodes.HostState.record(tmp_path)
    assert state.leftovers() == []
    before = FORWARD.read_text().strip()
    # A process that names the node's directory, as kubelet and containerd do.
    sleeper = subprocess.Popen(["sh", "-c", "sleep 600", str(tmp_path)])
    nodes.create_bridge()
    FORWARD.write_text("0" if before == "1" else "1")
    try:
        found = "\n".join(state.leftovers())
        assert f"process {sleeper.pid}" in found
        assert f"bridge {nodes.BRIDGE_NAME}" in found
        assert "sysctl net.ipv4.ip_forward" in found
    finally:
        state.restore()
        sleeper.wait(10)
    assert state.leftovers() == []
    assert FORWARD.read_text().strip() == before
