"""`make test-live`: refuse to run without credentials, run only what is configured, and say
loudly what did not run. Never collected by `make test` (tests/conftest.py ignores this
directory unless CLOUDINFER_LIVE=1)."""

from __future__ import annotations

import os

import pytest

from .plan import CLOUDS, LivePlan, plan

LIVE_PLAN = pytest.StashKey[LivePlan]()
WROTE = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LIVE_PLAN] = plan(os.environ)
    config.stash[WROTE] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = session.config.stash[LIVE_PLAN].problems
    if problems:
        pytest.exit("make test-live cannot run:\n" + "\n".join(problems), returncode=4)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "live_cloud" in metafunc.fixturenames:
        clouds = [c.cloud for c in CLOUDS]
        metafunc.parametrize("live_cloud", clouds, ids=[c.value for c in clouds])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    live = config.stash[LIVE_PLAN]
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        cloud = callspec.params.get("live_cloud") if callspec is not None else None
        writes = item.get_closest_marker("live_write") is not None
        wanted = cloud is None or (cloud in live.writes if writes else cloud in live.accounts)
        (keep if wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    live = config.stash[LIVE_PLAN]
    write = terminalreporter.write_line
    terminalreporter.section("make test-live", sep="=", bold=True)
    for cloud in live.accounts.values():
        where = cloud.endpoint or "the cloud's public endpoint"
        write(f"RAN against {cloud.cloud.value} at {where}")
    for line in config.stash[WROTE]:
        write(f"WROTE: {line}", yellow=True, bold=True)
    for line in live.not_run:
        write(f"NOT RUN: {line}", red=True, bold=True)
