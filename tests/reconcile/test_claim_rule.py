"""Claims: one owner per cloud service, whatever order the claimants are seen in.

The ownership rule is pure (`decide`), so most cases are a table. The last tests drive two
ServiceReconcilers over one observer with a recording provider: only the owner writes, the
other reports `ServiceClaimed` once, and takes over when the owner goes.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.model import (
    ApplyResult,
    Change,
    Cloud,
    ObservedService,
    Phase,
    Replicas,
    Scale,
)
from cloudinfer.cloud.provider import Account
from cloudinfer.cloud.tencent.parse import CAPABILITIES
from cloudinfer.reconcile.accounts import AccountConfig
from cloudinfer.reconcile.claims import (
    Claimant,
    ClaimRegistry,
    Identity,
    IdentityLookup,
    Unknown,
    claimant_from,
    cloud_identity,
    decide,
    owner_of,
)
from cloudinfer.reconcile.kube_access import SecretData
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import Snapshot
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

T0 = datetime.datetime(2026, 5, 10, 8, 0, 0, tzinfo=datetime.UTC)
ID_A: Identity = ("tencent", "http://sim", "ap-guangzhou", "AKIDa", "")
ID_B: Identity = ("tencent", "http://sim", "ap-guangzhou", "AKIDb", "")


def _c(
    ns: str, name: str, second: int | None, account: str = "acct", service: str = "ms-1"
) -> Claimant:
    created = None if second is None else T0 + datetime.timedelta(seconds=second)
    return Claimant(ns, name, created, account, service)


def _identities(**by_account: Identity | Unknown | None) -> IdentityLookup:
    """`ns__acct=...` keyword arguments -> a lookup by (namespace, account)."""
    table: dict[Any, Identity | Unknown | None] = {
        tuple(key.split("__")): value for key, value in by_account.items()
    }
    return table.get


@pytest.mark.parametrize(
    ("me", "others", "identities", "owner", "waiting"),
    [
        pytest.param(
            _c("a", "young", 10), [_c("a", "old", 5)], _identities(a__acct=ID_A), "a/old", 0,
            id="the-older-one-owns-the-service",
        ),
        pytest.param(
            _c("a", "old", 5), [_c("a", "young", 10)], _identities(a__acct=ID_A), "a/old", 0,
            id="the-owner-sees-itself-as-owner",
        ),
        pytest.param(
            _c("b", "x", 5), [_c("a", "z", 5, "other")],
            _identities(a__other=ID_A, b__acct=ID_A), "a/z", 0,
            id="same-second-the-namespace-breaks-the-tie",
        ),
        pytest.param(
            _c("a", "b-svc", 5), [_c("a", "a-svc", 5)], _identities(a__acct=ID_A), "a/a-svc", 0,
            id="same-second-and-namespace-the-name-breaks-the-tie",
        ),
        pytest.param(
            _c("a", "dated", 500), [_c("a", "undated", None)], _identities(a__acct=ID_A),
            "a/dated", 0,
            id="a-claimant-without-creation-time-ranks-last",
        ),
        pytest.param(
            _c("a", "young", 10), [_c("a", "old", 5, service="ms-2")],
            _identities(a__acct=ID_A), "a/young", 0,
            id="another-service-id-is-no-rival",
        ),
        pytest.param(
            _c("b", "young", 10), [_c("a", "old", 5)],
            _identities(a__acct=ID_A, b__acct=ID_A), "a/old", 0,
            id="two-cloudaccounts-with-the-same-key-and-region-share-the-claim",
        ),
        pytest.param(
            _c("b", "young", 10), [_c("a", "old", 5)],
            _identities(a__acct=ID_B, b__acct=ID_A), "b/young", 0,
            id="a-cloudaccount-with-another-key-is-another-cloud-account",
        ),
        pytest.param(
            _c("b", "young", 10), [_c("a", "old", 5)], _identities(b__acct=ID_A), "b/young", 0,
            id="a-missing-cloudaccount-claims-nothing",
        ),
        pytest.param(
            _c("b", "young", 10), [_c("a", "old", 5)],
            _identities(a__acct=None, b__acct=ID_A), "b/young", 0,
            id="a-cloudaccount-that-never-observed-claims-nothing",
        ),
        pytest.param(
            _c("b", "young", 10), [_c("a", "old", 5)],
            _identities(a__acct=Unknown.PENDING, b__acct=ID_A), "b/young", 1,
            id="an-older-claimant-behind-a-starting-cloudaccount-makes-us-wait",
        ),
        pytest.param(
            _c("a", "old", 5), [_c("b", "young", 10)],
            _identities(a__acct=ID_A, b__acct=Unknown.PENDING), "a/old", 0,
            id="a-younger-claimant-behind-a-starting-cloudaccount-cannot-take-it",
        ),
        pytest.param(
            _c("a", "mid", 7), [_c("a", "old", 5), _c("a", "young", 10), _c("a", "mid", 7)],
            _identities(a__acct=ID_A), "a/old", 0,
            id="three-claimants-and-the-asker-listed-among-them",
        ),
    ],
)  # fmt: skip
def test_decide(
    me: Claimant, others: list[Claimant], identities: IdentityLookup, owner: str, waiting: int
) -> None:
    verdict = decide(me, others, identities)
    assert verdict.owner.describe() == owner
    assert verdict.waiting_for == waiting
    assert me not in verdict.rivals


def test_the_owner_does_not_depend_on_the_order_claimants_are_seen_in() -> None:
    claimants = [_c("b", "x", 5), _c("a", "y", 5), _c("a", "z", 3), _c("c", "w", None)]
    owners = {owner_of(order) for order in itertools.permutations(claimants)}
    assert owners == {_c("a", "z", 3)}


def test_claimant_from_reads_metadata_and_spec() -> None:
    body = {
        "metadata": {
            "namespace": "ns",
            "name": "chat",
            "creationTimestamp": "2026-05-10T08:00:05Z",
        },
        "spec": {"accountRef": {"name": "acct"}, "serviceId": "ms-1", "replicas": 2},
    }
    assert claimant_from(body) == _c("ns", "chat", 5)
    assert claimant_from({"metadata": {"name": "x"}, "spec": {}}) is None


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(
            Account("a/x", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("K", Secret("s1")),
                    endpoint="http://sim/"),
            Account("b/y", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("K", Secret("s2")),
                    endpoint="http://sim"),
            True, id="the-secret-and-the-cloudaccount-name-do-not-matter",
        ),
        pytest.param(
            Account("a/x", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("K", Secret("s"))),
            Account("a/x", Cloud.TENCENT, "ap-shanghai", TencentCredentials("K", Secret("s"))),
            False, id="another-region",
        ),
        pytest.param(
            Account("a/x", Cloud.HUAWEI, "cn-north-4", HuaweiCredentials("K", Secret("s"), "p1")),
            Account("a/x", Cloud.HUAWEI, "cn-north-4", HuaweiCredentials("K", Secret("s"), "p2")),
            False, id="another-modelarts-project",
        ),
        pytest.param(
            Account("a/x", Cloud.BAIDU, "bj", BaiduCredentials("K", Secret("s"))),
            Account("a/x", Cloud.BAIDU, "bj", BaiduCredentials("K", Secret("s")),
                    endpoint="http://private"),
            False, id="another-endpoint",
        ),
    ],
)  # fmt: skip
def test_cloud_identity(left: Account, right: Account, same: bool) -> None:
    assert (cloud_identity(left) == cloud_identity(right)) is same
    assert "s1" not in repr(cloud_identity(left))


def test_registry_wakes_the_other_claimants_only_when_something_changed() -> None:
    registry = ClaimRegistry()
    wakers = {name: asyncio.Event() for name in ("old", "young", "elsewhere")}
    for name, claimant in (
        ("old", _c("a", "old", 5)),
        ("young", _c("a", "young", 10)),
        ("elsewhere", _c("a", "elsewhere", 1, service="ms-2")),
    ):
        registry.put(claimant)
        registry.watch(claimant.key, wakers[name])
    for waker in wakers.values():
        waker.clear()

    registry.put(_c("a", "old", 5))  # an event that changed nothing relevant
    assert not any(w.is_set() for w in wakers.values())

    registry.drop(("a", "old"))
    assert wakers["young"].is_set() and not wakers["elsewhere"].is_set()
    assert [c.name for c in registry.claimants("ms-1")] == ["young"]

    wakers["young"].clear()
    registry.put(_c("a", "old", 5, service="ms-2"))  # re-appears naming the other service
    assert wakers["elsewhere"].is_set() and not wakers["young"].is_set()
    assert not wakers["old"].is_set()  # never woken by its own change


# -- two reconcilers over one observer ------------------------------------------------------


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.events: list[tuple[str, str, str, str]] = []

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return None

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None:
        return None

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        self.patches.append((name, patch))

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((str(body["metadata"]["name"]), type_, reason, message))


class RecordingProvider:
    def __init__(self) -> None:
        self.applied: list[Change] = []

    async def apply(self, account: Account, change: Change, *, observed: ObservedService) -> Any:
        self.applied.append(change)
        return ApplyResult(change=change, call="ModifyModelService", request_id="req-1")


def _service(name: str, created: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"accountRef": {"name": "acct"}, "serviceId": "ms-1", "replicas": replicas},
    }


def _observe(runtime: Runtime, provider: RecordingProvider, replicas: int) -> None:
    account = Account(
        "ns/acct", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("K", Secret("s"))
    )
    observed = ObservedService(
        cloud=Cloud.TENCENT, service_id="ms-1", replicas=Replicas(desired=replicas, ready=replicas),
        phase=Phase.RUNNING, raw_status="Normal", capabilities=CAPABILITIES,
    )  # fmt: skip
    runtime.observer(("ns", "acct")).snapshot = Snapshot(
        {"ms-1": observed}, datetime.datetime.now(datetime.UTC), None,
        AccountConfig(account, None, {}), provider,  # type: ignore[arg-type]
    )  # fmt: skip


def _scaling(kube: RecordingKube) -> tuple[Runtime, RecordingProvider, ServiceReconciler]:
    """One InferenceService asking for 2 replicas of a cloud service observed with 1."""
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    provider = RecordingProvider()
    _observe(runtime, provider, replicas=1)
    service = ServiceReconciler(runtime, _service("svc", "2026-05-10T08:00:00Z", replicas=2))
    runtime.claims.update(service.body)
    return runtime, provider, service


def test_only_the_owner_writes_and_the_next_claimant_takes_over_when_it_goes() -> None:
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    provider = RecordingProvider()
    _observe(runtime, provider, replicas=1)
    old = ServiceReconciler(runtime, _service("old", "2026-05-10T08:00:00Z", replicas=2))
    young = ServiceReconciler(runtime, _service("young", "2026-05-10T08:00:09Z", replicas=3))
    # What the Kopf index does before any daemon starts.
    runtime.claims.update(old.body)
    runtime.claims.update(young.body)

    async def run() -> None:
        await young.reconcile()  # the younger daemon happens to run first
        assert provider.applied == []
        await old.reconcile()
        assert provider.applied == [Scale(service_id="ms-1", replicas=2, reason="replicas 1 -> 2")]
        patches = len(kube.patches)
        await young.reconcile()  # nothing changed: no status write, no second event
        assert len(kube.patches) == patches

        young.waker.clear()
        old.detach()
        runtime.claims.drop(("ns", "old"))  # the owner is deleted
        assert young.waker.is_set(), "the next claimant must be woken"
        _observe(runtime, provider, replicas=2)
        await young.reconcile()

    asyncio.run(run())
    assert [c.replicas for c in provider.applied if isinstance(c, Scale)] == [2, 3]
    claimed = next(p for name, p in kube.patches if name == "young")
    ready = next(c for c in claimed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ServiceClaimed"
    assert "InferenceService ns/old" in ready["message"]
    assert claimed["observed"]["replicas"] == 1, "the non-owner still shows what the cloud reports"
    warnings = [e for e in kube.events if e[0] == "young" and e[1] == "Warning"]
    assert [e[2] for e in warnings] == ["ServiceClaimed"]


def test_a_cloudaccount_whose_observer_has_not_started_is_pending_not_absent() -> None:
    """At startup every CloudAccount is known (Kopf index) before its daemon starts: an older
    claimant behind it must make the younger wait, not let it write first."""
    runtime = Runtime(RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    runtime.account_seen(("a", "acct"), True)
    assert runtime.identity_of(("a", "acct")) is Unknown.PENDING
    assert runtime.identity_of(("a", "other")) is None
    runtime.observer(("a", "acct"))
    assert runtime.identity_of(("a", "acct")) is Unknown.PENDING  # first list not done
    runtime.account_seen(("a", "acct"), False)
    runtime.drop_observer(("a", "acct"))
    assert runtime.identity_of(("a", "acct")) is None
