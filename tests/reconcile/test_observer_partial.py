"""The first observation of an account is published as it is read (ModelArts reads a detail
per service at 10/s): a service's reconciler acts as soon as its service is in, a service not
in yet is not reported missing, and the observation is as old as the list's start."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

from test_claim_rule import RecordingKube, RecordingProvider

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.cloud.budget import CallRate
from cloudinfer.cloud.credentials import Secret, TencentCredentials
from cloudinfer.cloud.errors import AuthError
from cloudinfer.cloud.model import Cloud, ObservedService, Phase, Replicas
from cloudinfer.cloud.provider import Account, Progress
from cloudinfer.cloud.tencent.parse import CAPABILITIES
from cloudinfer.reconcile.accounts import AccountConfig
from cloudinfer.reconcile.kube_access import SecretData
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import ACTIVE_POLL_DUTY_CYCLE, AccountObserver, Snapshot
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

ACCOUNT_BODY = {
    "metadata": {"namespace": "ns", "name": "acct", "generation": 1, "uid": "u"},
    "spec": {
        "provider": "tencent", "region": "ap-guangzhou",
        "credentialsSecretRef": {"name": "creds"},
        "pollIntervalSeconds": 600, "activePollIntervalSeconds": 1,
    },
}  # fmt: skip


def _observed(service_id: str, replicas: int = 1) -> ObservedService:
    return ObservedService(
        cloud=Cloud.TENCENT, service_id=service_id,
        replicas=Replicas(desired=replicas, ready=replicas),
        phase=Phase.RUNNING, raw_status="Normal", capabilities=CAPABILITIES,
    )  # fmt: skip


class SecretKube(RecordingKube):
    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return SecretData({"accessKeyId": "aWQ=", "secretAccessKey": "a2V5"}, "1")


class OneByOneProvider:
    """Reads ms-1, then waits for `go` before reading ms-2 (a detail read at a time)."""

    def __init__(self, fail: bool = False) -> None:
        self.go = asyncio.Event()
        self.fail = fail

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        if self.fail:
            raise AuthError("signature refused", cloud="tencent")
        assert progress is not None
        progress(_observed("ms-1"))
        await self.go.wait()
        progress(_observed("ms-2"))
        return [_observed("ms-1"), _observed("ms-2")]


def _observer(provider: OneByOneProvider) -> AccountObserver:
    observer = AccountObserver(
        ("ns", "acct"), SecretKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST
    )
    configure = observer._configure

    async def with_provider(*args: Any) -> Any:
        config, _ = await configure(*args)
        return config, provider

    observer._configure = with_provider  # type: ignore[method-assign]
    return observer


def test_services_are_published_as_the_first_observation_reads_them() -> None:
    provider = OneByOneProvider()
    observer = _observer(provider)
    first, second = asyncio.Event(), asyncio.Event()

    async def run() -> tuple[Snapshot, set[str], bool, bool, Snapshot, bool]:
        observer.subscribe("ms-1", first)
        observer.subscribe("ms-2", second)
        first.clear()
        second.clear()
        before = datetime.datetime.now(datetime.UTC)
        observing = asyncio.ensure_future(observer.observe_once(ACCOUNT_BODY))
        await asyncio.sleep(0.05)
        partial = observer.snapshot
        in_partial = set(partial.services)
        woken = (first.is_set(), second.is_set())
        assert partial.observed_at is not None and partial.observed_at >= before
        provider.go.set()
        await observing
        await observer._close_client()
        return partial, in_partial, woken[0], woken[1], observer.snapshot, second.is_set()

    partial, in_partial, first_woken, second_woken, final, second_woken_at_end = asyncio.run(run())
    assert not partial.complete
    assert in_partial == {"ms-1"}
    assert (first_woken, second_woken) == (True, False)
    assert final.complete and set(final.services) == {"ms-1", "ms-2"}
    assert final.observed_at == partial.observed_at  # as old as the list's start
    assert second_woken_at_end


def test_a_first_list_that_fails_publishes_nothing_and_claims_nothing() -> None:
    observer = _observer(OneByOneProvider(fail=True))

    async def run() -> None:
        await observer.observe_once(ACCOUNT_BODY)
        await observer._close_client()

    asyncio.run(run())
    assert observer.snapshot.observed_at is None
    assert observer.claim_identity is None


def _service(name: str, service_id: str) -> Mapping[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "generation": 1},
        "spec": {"accountRef": {"name": "acct"}, "serviceId": service_id, "replicas": 2},
    }


def test_a_reconciler_acts_on_a_partial_observation_and_waits_for_a_missing_service() -> None:
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    runtime.account_seen(("ns", "acct"), True)
    provider = RecordingProvider()
    account = Account(
        "ns/acct", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("id", Secret("k"))
    )
    config = AccountConfig(account, None, {})
    observer = runtime.observer(("ns", "acct"))
    now = datetime.datetime.now(datetime.UTC)
    observer.snapshot = Snapshot(
        {"ms-1": _observed("ms-1")}, now, None, config, provider,  # type: ignore[arg-type]
        "u/1/1", complete=False,
    )  # fmt: skip
    in_partial = ServiceReconciler(runtime, _service("in", "ms-1"))
    not_yet = ServiceReconciler(runtime, _service("later", "ms-9"))

    async def run() -> None:
        await in_partial.reconcile()
        await not_yet.reconcile()

    asyncio.run(run())
    assert [type(c).__name__ for c in provider.applied] == ["Scale"]
    assert [name for name, _ in kube.patches] == ["in"]  # nothing said about "later" yet

    observer.snapshot = Snapshot(
        {"ms-1": _observed("ms-1", 2)}, now, None, config, provider,  # type: ignore[arg-type]
        "u/1/1",
    )  # fmt: skip
    asyncio.run(not_yet.reconcile())
    reasons = [c["reason"] for name, p in kube.patches if name == "later" for c in p["conditions"]]
    assert "ServiceNotFound" in reasons, kube.patches


class SlowListProvider:
    """A list that takes 0.6 s (ten pages at the TI-ONE 20/s list limit would take 0.5 s);
    with `observer`, a write of that account waits for its budget meanwhile."""

    def __init__(self, observer: AccountObserver | None) -> None:
        self.observer = observer
        self.blocked: asyncio.Future[None] | None = None

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        if self.observer is not None:  # one write holds the next token of a 1/minute budget
            budgets = self.observer._budgets
            budgets.configure(account.name, {"ModifyModelService": CallRate(1 / 60)})
            bucket = budgets.bucket(account.name, "ModifyModelService")
            await bucket.acquire()
            self.blocked = asyncio.ensure_future(bucket.acquire())
        await asyncio.sleep(0.6)
        return [_observed("ms-1")]


def _active_delay(writes_waiting: bool) -> float:
    observer = AccountObserver(
        ("ns", "acct"), SecretKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST
    )
    provider = SlowListProvider(observer if writes_waiting else None)
    configure = observer._configure

    async def with_provider(*args: Any) -> Any:
        config, _ = await configure(*args)
        return config, provider

    observer._configure = with_provider  # type: ignore[method-assign]

    async def run() -> float:
        observer.subscribe("ms-1", asyncio.Event())
        observer.mark_active("ms-1", True)
        delay = await observer.observe_once(ACCOUNT_BODY)
        if provider.blocked is not None:
            provider.blocked.cancel()
        await observer._close_client()
        return delay

    return asyncio.run(run())


def test_lists_keep_their_duty_cycle_only_while_writes_wait_for_budget() -> None:
    # While writes wait, a 0.6 s list is followed by 2.4 s without one (0.6 / 0.25);
    # in the tail, when none waits, the active interval (1 s) alone applies.
    assert _active_delay(writes_waiting=True) >= 0.6 / ACTIVE_POLL_DUTY_CYCLE
    assert _active_delay(writes_waiting=False) == 1.0
