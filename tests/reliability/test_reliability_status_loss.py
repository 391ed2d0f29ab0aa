"""Kubernetes failing under the runtime (found by the apiserver-restart scenario): a cloud write
whose status write fails must still guard against a duplicate, and an account observer whose
status write fails must keep observing instead of dying for Kopf's one-minute daemon backoff."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.cloud.credentials import Secret, TencentCredentials
from cloudinfer.cloud.model import ApplyResult, Change, Cloud, ObservedService, Phase, Replicas
from cloudinfer.cloud.provider import Account, Progress
from cloudinfer.cloud.tencent.parse import CAPABILITIES
from cloudinfer.reconcile.accounts import AccountConfig
from cloudinfer.reconcile.kube_access import SecretData
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import (
    ACTIVE_POLL_DUTY_CYCLE,
    ERROR_BACKOFF_SECONDS,
    AccountObserver,
    Snapshot,
)
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

NOW = datetime.datetime.now(datetime.UTC)


class FlakyKube:
    """KubeAccess whose status writes fail `failures` times (the apiserver is restarting)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.patches: list[Mapping[str, Any]] = []

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return None

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None:
        return None

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("the apiserver is restarting")
        self.patches.append(patch)

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        pass


class RecordingProvider:
    def __init__(self) -> None:
        self.applied: list[Change] = []

    async def apply(self, account: Account, change: Change, *, observed: ObservedService) -> Any:
        self.applied.append(change)
        return ApplyResult(change=change, call="ModifyModelService", request_id="req-1")


def _observed(replicas: int) -> ObservedService:
    return ObservedService(
        cloud=Cloud.TENCENT, service_id="ms-1", replicas=Replicas(desired=replicas, ready=replicas),
        phase=Phase.RUNNING, raw_status="Normal", capabilities=CAPABILITIES,
    )  # fmt: skip


def test_a_write_whose_status_write_failed_is_not_repeated_on_a_stale_observation() -> None:
    kube = FlakyKube(failures=1)
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    provider = RecordingProvider()
    account = Account(
        "ns/acct", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("id", Secret("k"))
    )
    observer = runtime.observer(("ns", "acct"))
    # An observation taken before the write, as with a long poll interval.
    observer.snapshot = Snapshot(
        {"ms-1": _observed(1)}, NOW - datetime.timedelta(seconds=5), None,
        AccountConfig(account, None, {}), provider,  # type: ignore[arg-type]
    )  # fmt: skip
    body = {
        "metadata": {"namespace": "ns", "name": "chat", "generation": 1},
        "spec": {"accountRef": {"name": "acct"}, "serviceId": "ms-1", "replicas": 2},
    }
    reconciler = ServiceReconciler(runtime, body)

    async def run() -> None:
        with pytest.raises(ConnectionRefusedError):
            await reconciler.reconcile()  # the scale is sent, its status write fails
        await reconciler.reconcile()  # same stale observation: must wait, not scale again

    asyncio.run(run())
    assert len(provider.applied) == 1, provider.applied
    journal = kube.patches[-1]["journal"]
    assert [e["result"] for e in journal] == ["Succeeded"]


def test_an_observer_whose_status_write_fails_keeps_observing() -> None:
    kube = FlakyKube(failures=1)
    observer = AccountObserver(("ns", "acct"), kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    rounds = 0
    waits: list[float] = []

    async def observe_once(body: Mapping[str, Any]) -> float:
        nonlocal rounds
        rounds += 1
        await kube.patch_status("cloudaccounts", "ns", "acct", {"x": rounds})
        return 30.0

    async def record_wait(delay: float) -> None:
        waits.append(delay)

    observer.observe_once = observe_once  # type: ignore[method-assign]
    observer._wait = record_wait  # type: ignore[method-assign]

    async def run() -> None:
        await observer.run({}, stopped=lambda: rounds >= 3, sleep=asyncio.sleep)

    asyncio.run(asyncio.wait_for(run(), timeout=15))
    assert rounds == 3
    # The failed round is retried after the short error back-off, not Kopf's minute.
    assert waits == [ERROR_BACKOFF_SECONDS, 30.0, 30.0]


class SlowSecretKube(FlakyKube):
    """The Secret read waits, as it does while etcd is down (the apiserver waits for it)."""

    def __init__(self, delay: float) -> None:
        super().__init__(failures=0)
        self.delay = delay

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        await asyncio.sleep(self.delay)
        return SecretData({"accessKeyId": "aWQ=", "secretAccessKey": "a2V5"}, "1")


class ListingProvider:
    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        return [_observed(1)]


def test_a_slow_secret_read_does_not_delay_the_next_active_observation() -> None:
    """Found by the etcd-restart scenario: the Secret read counted as listing time, so a read
    that waited 15 s for etcd put the next active poll 4 x 15 s later."""
    secret_wait = 1.0
    observer = AccountObserver(
        ("ns", "acct"), SlowSecretKube(secret_wait), Metrics(), allow_list=DEFAULT_ALLOW_LIST
    )
    configure = observer._configure

    async def configure_with_listing_provider(*args: Any) -> Any:
        config, _ = await configure(*args)
        return config, ListingProvider()

    observer._configure = configure_with_listing_provider  # type: ignore[method-assign]
    body = {
        "metadata": {"namespace": "ns", "name": "acct", "generation": 1},
        "spec": {
            "provider": "tencent", "region": "ap-guangzhou",
            "credentialsSecretRef": {"name": "creds"},
            "pollIntervalSeconds": 600, "activePollIntervalSeconds": 1,
        },
    }  # fmt: skip

    async def run() -> float:
        observer.subscribe("ms-1", asyncio.Event())
        observer.mark_active("ms-1", True)  # a change in flight: the fast interval applies
        delay = await observer.observe_once(body)
        await observer._close_client()
        return delay

    delay = asyncio.run(run())
    assert observer.snapshot.error is None, observer.snapshot.error
    assert "ms-1" in observer.snapshot.services
    # 1 s (the active interval); timing the Secret read too gave 4 s.
    assert delay < secret_wait / ACTIVE_POLL_DUTY_CYCLE, delay
