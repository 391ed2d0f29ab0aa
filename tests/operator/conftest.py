"""Simulators and one operator process for the integration suite (session-wide)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Kube, OperatorProcess, start_simulators
from kubernetes import client

from cloudsim.server import RunningSim
from support import Cluster


@pytest.fixture(scope="session")
def sims() -> Iterator[dict[str, RunningSim]]:
    running = start_simulators()
    yield running
    for sim in running.values():
        sim.stop()


@pytest.fixture(scope="session")
def kube(api_client: client.ApiClient, cluster: Cluster, cloudinfer_crds: Path) -> Kube:
    return Kube(api_client, cluster)


@pytest.fixture(scope="session")
def operator_process(
    cluster: Cluster, cloudinfer_crds: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    # Test namespaces are t-*; restart tests run their own operator in r-* namespaces.
    process = OperatorProcess(cluster.kubeconfig, log, args=("--standalone", "--namespace", "t-*"))
    process.start()
    yield process
    process.stop()
    print(f"operator log: {log}")
