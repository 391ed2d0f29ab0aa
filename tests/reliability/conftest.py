"""Reliability scenarios: their own simulators, namespaces (z-*) and operator processes.

The session operator of tests/operator watches t-* namespaces; every scenario here runs its own
operator process(es) in a z-* namespace, so it can SIGKILL and restart them freely.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

# The operator harness (tests/operator/harness.py) is shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from harness import Kube, start_simulators
from scenario import FIGURES, LeakRegistry, Scenario
from soak import MARKER_HELP, soak_enabled

from cloudsim.server import RunningSim
from support import Cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Recovery times and the like are reported, not asserted (docs/reliability.md)."""
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


FINAL_SWEEP = "test_no_credential_value_appears_in_any_captured_text"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak variants leave `make test` as deselected, not skipped (see soak.py). The credential
    sweep runs last of the session, so it reads every operator log the run wrote."""
    if not soak_enabled():
        soak = [item for item in items if item.get_closest_marker("soak") is not None]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if item.get_closest_marker("soak") is None]
    sweep = [item for item in items if item.name == FINAL_SWEEP]
    items[:] = [item for item in items if item.name != FINAL_SWEEP] + sweep


@pytest.fixture(scope="session")
def rsims() -> Iterator[dict[str, RunningSim]]:
    """Simulators of our own: scenarios change their clocks and stop their servers."""
    running = start_simulators()
    yield running
    for sim in running.values():
        sim.stop()


@pytest.fixture(scope="session")
def rkube(api_client: client.ApiClient, cluster: Cluster, cloudinfer_crds: Path) -> Kube:
    return Kube(api_client, cluster)


@pytest.fixture(scope="session")
def leak_registry() -> LeakRegistry:
    return LeakRegistry()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability-logs")


@pytest.fixture
def scenario(  # noqa: PLR0917 - fixtures
    rkube: Kube, cluster: Cluster, rsims: dict[str, RunningSim], leak_registry: LeakRegistry,
    log_dir: Path, request: pytest.FixtureRequest,
) -> Iterator[Scenario]:  # fmt: skip
    name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    sc = Scenario(rkube, cluster, rsims, registry=leak_registry, log_dir=log_dir, name=name[:80])
    try:
        yield sc
    finally:
        sc.close()
