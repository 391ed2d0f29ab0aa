"""The kind suite: the operator image in a kind cluster, installed with Helm.

Runs only through `make test-kind` (CLOUDINFER_KIND=1), on a machine with Docker. Without
Docker it fails with directions; it never skips silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from install_scenarios import FIGURES

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_IMAGE = "cloudinfer-operator:e2e"
SIM_IMAGE = "cloudinfer-cloudsim:e2e"


def _docker_ready() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`docker info` failed: {probe.stderr.strip()[:200]}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    problem = _docker_ready()
    if problem:
        raise pytest.UsageError(
            f"the kind suite needs a Docker engine: {problem}. Install Docker (and let "
            "pytest-kind download kind), then run `make test-kind`. It is not part of `make test`."
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Handover times are reported, not asserted (docs/reliability.md)."""
    if FIGURES:
        terminalreporter.section("kind suite figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def images() -> None:
    run("docker", "build", "-t", OPERATOR_IMAGE, ".")
    run("docker", "build", "-t", SIM_IMAGE, "-f", "tests/e2e_kind/Dockerfile.sim", ".")


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return Path(run(str(ROOT / "hack" / "build-k8s.sh")).strip().splitlines()[-1]) / "helm"


@pytest.fixture(scope="session")
def loaded(kind_cluster: Any, images: None) -> Any:
    """A fresh kind cluster with both images loaded (nothing installed: the scenarios do)."""
    for image in (OPERATOR_IMAGE, SIM_IMAGE):
        kind_cluster.load_docker_image(image)
    return kind_cluster
