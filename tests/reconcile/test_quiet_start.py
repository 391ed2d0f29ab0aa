"""A reconciler waiting for its CloudAccount's observer writes no status for the first few
seconds (at start-up, 1,000 such writes delayed the very observation they waited for), and
reports the wait once it lasts longer."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from test_claim_rule import RecordingKube, RecordingProvider, _observe, _service

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.reconciler import QUIET_START_SECONDS, ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

LATER = datetime.timedelta(seconds=QUIET_START_SECONDS + 1)


def _ready(kube: RecordingKube) -> tuple[str, str]:
    _, patch = kube.patches[-1]
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    return ready["reason"], ready["message"]


@pytest.mark.parametrize(
    ("observer_started", "reason"),
    [(False, "AccountNotReady"), (True, "PendingObservation")],
    ids=["observer-not-started", "first-list-not-done"],
)
def test_a_short_wait_for_the_observer_is_not_written(observer_started: bool, reason: str) -> None:
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    runtime.account_seen(("ns", "acct"), True)  # the CloudAccount exists (Kopf index)
    if observer_started:
        runtime.observer(("ns", "acct"))  # its daemon runs, its first list has not returned
    service = ServiceReconciler(runtime, _service("svc", "2026-05-10T08:00:00Z", replicas=2))
    runtime.claims.update(service.body)

    async def run() -> None:
        outcome = await service.reconcile()
        assert kube.patches == [], "a wait shorter than the quiet period is not written"
        assert outcome.wake_at is not None and outcome.wake_at > datetime.datetime.now(datetime.UTC)
        service._started -= LATER  # the wait has now lasted longer than the quiet period
        await service.reconcile()

    asyncio.run(run())
    assert _ready(kube)[0] == reason


def test_the_first_observation_ends_the_quiet_wait_with_a_plan() -> None:
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    runtime.account_seen(("ns", "acct"), True)
    service = ServiceReconciler(runtime, _service("svc", "2026-05-10T08:00:00Z", replicas=2))
    runtime.claims.update(service.body)
    provider = RecordingProvider()

    async def run() -> None:
        await service.reconcile()
        _observe(runtime, provider, replicas=1)
        await service.reconcile()

    asyncio.run(run())
    assert [getattr(c, "replicas", None) for c in provider.applied] == [2]
    assert len(kube.patches) == 1, "one status write: the plan's, none for the wait"


def test_a_missing_cloudaccount_is_reported_at_once() -> None:
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    service = ServiceReconciler(runtime, _service("svc", "2026-05-10T08:00:00Z", replicas=2))
    runtime.claims.update(service.body)
    asyncio.run(service.reconcile())
    reason, message = _ready(kube)
    assert reason == "AccountNotReady" and "not found" in message
