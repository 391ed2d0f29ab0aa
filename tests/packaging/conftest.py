"""Fixtures for the packaging tests: the helm and kubectl built from source, and (for the
RBAC and wheel tests) the operator harness of tests/operator with its simulators."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging_support import CHART, Helm

from controlplane import find_bin_dir
from support import Cluster

# tests/operator/harness.py (OperatorProcess, Kube, simulators) is shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from harness import start_simulators

from cloudsim.server import RunningSim


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """The binaries of hack/build-k8s.sh; asking for them starts no control plane."""
    return find_bin_dir()


@pytest.fixture(scope="session")
def helm(bin_dir: Path) -> Helm:
    """Run the pinned helm; fails the test with helm's stderr unless check=False."""

    def run(
        *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
        result = subprocess.run(
            [str(bin_dir / "helm"), *extra, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def packaging_sims() -> Iterator[dict[str, RunningSim]]:
    """The three cloud simulators on loopback (the operator suite's are directory-scoped)."""
    running = start_simulators()
    yield running
    for sim in running.values():
        sim.stop()


@pytest.fixture(scope="session")
def all_chart_crds(cluster: Cluster) -> Path:
    """The chart's CRDs (ours and Kopf's peering kinds), applied once and established.
    CRDs are cluster-wide and shared with other tests, so nothing deletes them."""
    crds = str(CHART / "crds")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
    return CHART / "crds"
