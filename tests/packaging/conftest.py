"""Fixtures for the packaging tests: the helm and kubectl built from source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from packaging_support import Helm

from controlplane import find_bin_dir


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
