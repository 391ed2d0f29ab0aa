"""The node tier: a real single-node cluster (kubelet + containerd + runc, no Docker) with
the operator image built from the project's Dockerfile.

Collected only by `make test-node` (CLOUDINFER_NODE=1), which `make test` runs. On a host
that cannot run a node it fails with directions; it never skips.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from harness import FAST_SIM, Kube
from install_scenarios import FIGURES, InstallTarget
from kubernetes import config

from cloudsim.core import Settings as SimSettings
from cloudsim.server import RunningSim, make_sim, serve_in_thread
from controlplane import ControlPlane, find_bin_dir
from controlplane import node as nodes
from support import Cluster

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_HOSTS = ("127.0.0.1", nodes.BRIDGE_ADDRESS)


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = nodes.preflight_problems()
    if problems:
        raise pytest.UsageError(
            "the node tier cannot run on this host: " + "; ".join(problems) + ". It needs "
            "Linux, root and cgroups (see docs/install.md, 'Try it on a real node'). To run "
            f"the rest of `make test` without it, set {nodes.SKIP_ENV}=1."
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Handover times are reported, not asserted (docs/reliability.md)."""
    if FIGURES:
        terminalreporter.section("node tier figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def node_images() -> dict[str, str]:
    """The base, pause and operator images (cached by hack/build-node-images.sh)."""
    result = subprocess.run(
        [str(ROOT / "hack" / "build-node-images.sh")], capture_output=True, text=True,
        check=False, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"hack/build-node-images.sh failed:\n{result.stderr[-4000:]}")
    return dict(line.split("=", 1) for line in result.stdout.split())


@pytest.fixture(scope="session")
def node_plane(
    tmp_path_factory: pytest.TempPathFactory, node_images: dict[str, str]
) -> Iterator[ControlPlane]:
    """One node per session; after it stops, nothing it made may be left on the host."""
    plane = ControlPlane(
        bin_dir=find_bin_dir(),
        work_dir=tmp_path_factory.mktemp("node"),
        node_sandbox_image=node_images["PAUSE_IMAGE"],
    )
    plane.start()
    try:
        for archive in ("PAUSE_ARCHIVE", "OPERATOR_ARCHIVE"):
            plane.import_image(Path(node_images[archive]))
        yield plane
    finally:
        plane.stop()
    assert plane.host_state is not None
    leftovers = plane.host_state.leftovers()
    assert not leftovers, f"the node left these behind: {leftovers}"


@pytest.fixture(scope="session")
def cluster(node_plane: ControlPlane) -> Cluster:
    return Cluster(node_plane.kubeconfig, node_plane.bin_dir, node_plane)


@pytest.fixture(scope="session")
def node_sims(node_plane: ControlPlane) -> Iterator[dict[bool, RunningSim]]:
    """A Huawei simulator on loopback (for host-network pods) and one on the bridge's host
    address (for pods on the pod network, which reach nothing else)."""
    running = {
        pod_network: serve_in_thread(
            make_sim("huawei", seed=7, settings=SimSettings(**FAST_SIM)),
            host=nodes.BRIDGE_ADDRESS if pod_network else "127.0.0.1",
        )
        for pod_network in (False, True)
    }
    yield running
    for sim in running.values():
        sim.stop()


@pytest.fixture(scope="session")
def target(
    cluster: Cluster, node_plane: ControlPlane, node_images: dict[str, str],
    node_sims: dict[bool, RunningSim],
) -> Iterator[InstallTarget]:  # fmt: skip
    repository, tag = node_images["OPERATOR_IMAGE"].rsplit(":", 1)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    # The pod's in-cluster login goes to the apiserver's address on the bridge, not to the
    # `kubernetes` Service's cluster IP, which nothing routes here (no kube-proxy).
    pod_network = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "extraEnv[0].name": "KUBERNETES_SERVICE_HOST",
        "extraEnv[0].value": nodes.BRIDGE_ADDRESS,
        "extraEnv[1].name": "KUBERNETES_SERVICE_PORT",
        "extraEnv[1].value": str(node_plane.apiserver_port),
        # The simulators: loopback for host-network pods, the bridge's host side otherwise.
        "allowedEndpointHosts": "{" + ",".join(ALLOWED_HOSTS) + "}",
    }

    def patch_install_yaml(deployment: dict[str, Any]) -> None:
        # install.yaml's namespace enforces restricted PodSecurity: the pod network.
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [
            *(a for a in container["args"] if not a.startswith("--allowed-endpoint-host=")),
            *(f"--allowed-endpoint-host={host}" for host in ALLOWED_HOSTS),
        ]
        container["image"] = node_images["OPERATOR_IMAGE"]
        container["imagePullPolicy"] = "Never"
        container["env"] = [
            *container.get("env", []),
            {"name": "KUBERNETES_SERVICE_HOST", "value": nodes.BRIDGE_ADDRESS},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(node_plane.apiserver_port)},
        ]

    def sim(on_pod_network: bool) -> tuple[RunningSim, str]:
        running = node_sims[on_pod_network]
        return running, running.base_url

    yield InstallTarget(
        kube=Kube(api, cluster),
        helm_bin=cluster.bin_dir / "helm",
        values={**pod_network, "hostNetwork": "true"},
        pod_network_values=pod_network,
        sim=sim,
        patch_install_yaml=patch_install_yaml,
    )
    api.close()
