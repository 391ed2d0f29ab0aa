"""Contract tests: the Qianfan provider against the Qianfan console simulator (in process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from virtual_clock import VirtualClock

from cloudinfer.cloud.baidu.provider import BaiduProvider, new_baidu_budgets
from cloudinfer.cloud.credentials import BaiduCredentials, Secret
from cloudinfer.cloud.errors import (
    InvalidRequestError,
    NotFoundError,
    QuotaError,
    UnsupportedActionError,
)
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.instances import select_instance
from cloudinfer.cloud.model import (
    ClearRateLimit,
    Cloud,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Resume,
    Scale,
    SetRateLimit,
    SetSchedule,
    Stop,
    Support,
)
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudsim.baidu import BaiduSim

T = TypeVar("T")
AK = "ALTAKcontracttest000000"
SK = "contract-test-sk"


@dataclass
class Rig:
    sim: BaiduSim
    clock: VirtualClock
    account: Account

    def run(self, body: Callable[[BaiduProvider], Awaitable[T]]) -> T:
        async def main() -> T:
            transport = httpx.ASGITransport(app=self.sim.asgi())
            async with new_async_client(transport=transport, trust_env=False) as client:
                provider = BaiduProvider(
                    client, clock=self.clock, budgets=new_baidu_budgets(self.clock)
                )
                return await body(provider)

        return self.clock.run(main())

    def count(self, action: str) -> int:
        return int(self.sim.journal.summary(action).get(action, {}).get("calls", 0))

    def writes(self, action: str) -> list[dict[str, Any]]:
        summary = self.sim.journal.summary(action)
        return [w["params"] for w in summary.get(action, {}).get("writes", [])]


def make_rig(*, services: int = 0) -> Rig:
    sim = BaiduSim(speed=0)
    sim.add_account(
        sim.new_account(
            {"name": "acct", "ak": AK, "sk": SK, "compute_units": {"cu-1": {"total_units": 8}}}
        )
    )
    for i in range(services):
        sim.add_service(
            {"account": "acct", "service_id": f"svco-{i:05d}", "units": {f"cu-{i}": 1}, "qps": 5}
        )
    clock = VirtualClock(start=0.0, on_advance=sim.clock.advance)
    account = Account(
        name="ns/acct",
        cloud=Cloud.BAIDU,
        region="bj",
        credentials=BaiduCredentials(AK, Secret(SK)),
        endpoint="http://qianfan.sim",
    )
    return Rig(sim, clock, account)


def test_provider_satisfies_the_protocol() -> None:
    assert isinstance(BaiduProvider(httpx.AsyncClient()), CloudProvider)


def test_one_full_observation_of_1000_services_takes_10_list_calls() -> None:
    rig = make_rig(services=1000)
    observed = rig.run(lambda p: p.list_services(rig.account))
    assert sorted(s.service_id for s in observed) == [f"svco-{i:05d}" for i in range(1000)]
    assert rig.count("DescribeServices") == 10
    assert rig.count("DescribeService") == 0


def test_observe_maps_fields_and_capabilities() -> None:
    rig = make_rig()
    rig.sim.add_service(
        {
            "account": "acct",
            "service_id": "svco-a",
            "name": "chat",
            "units": {"cu-1": 2},
            "qps": 7.5,
        }
    )
    seen = rig.run(lambda p: p.observe(rig.account, "svco-a"))
    assert (seen.cloud, seen.name, seen.phase, seen.raw_status) == (
        Cloud.BAIDU,
        "chat",
        Phase.RUNNING,
        "Serving",
    )
    assert (seen.replicas.desired, seen.replicas.ready) == (2, 2)
    assert seen.rate_limit == RateLimitSetting(rps=7.5, scope=RateLimitScope.PER_INSTANCE)
    assert [(i.instance_id, i.replicas.desired) for i in seen.instances or ()] == [("cu-1", 2)]
    capabilities = seen.capabilities
    assert (capabilities.rate_limit, capabilities.resume, capabilities.schedule) == (
        Support.READ_ONLY,
        Support.UNSUPPORTED,
        Support.UNSUPPORTED,
    )


def test_observing_a_missing_service_is_not_found() -> None:
    rig = make_rig()
    with pytest.raises(NotFoundError) as caught:
        rig.run(lambda p: p.observe(rig.account, "svco-nope"))
    assert caught.value.request_id


def _apply(rig: Rig, change: Any) -> tuple[Any, Any]:
    async def scenario(provider: BaiduProvider) -> tuple[Any, Any]:
        observed = await provider.observe(rig.account, change.service_id)
        result = await provider.apply(rig.account, change, observed=observed)
        return result, await provider.observe(rig.account, change.service_id)

    return rig.run(scenario)


def test_scale_calls_scale_service_on_the_compute_unit() -> None:
    rig = make_rig()
    rig.sim.add_service({"account": "acct", "service_id": "svco-a", "units": {"cu-1": 1}})
    result, after = _apply(rig, Scale(service_id="svco-a", replicas=3))
    assert result.call == "ScaleService"
    assert rig.writes("ScaleService") == [
        {"serviceId": "svco-a", "instanceId": "cu-1", "deploymentReplicasCount": 3}
    ]
    assert (after.replicas.desired, after.phase) == (3, Phase.TRANSITIONING)


def _scale_two_instance_service(rig: Rig, named: str | None) -> tuple[Any, Any]:
    """Scale svco-two (cu-1: 1 replica, cu-2: 2) to 4, planning on `named`'s replicas."""
    change = Scale(service_id="svco-two", replicas=4)

    async def scenario(provider: BaiduProvider) -> tuple[Any, Any]:
        observed = await provider.observe(rig.account, "svco-two")
        chosen = select_instance(observed, named, manages_replicas=True) if named else observed
        result = await provider.apply(rig.account, change, observed=chosen)
        return result, await provider.observe(rig.account, "svco-two")

    rig.sim.add_service({"account": "acct", "service_id": "svco-two", "units": {"cu-1": 1}})
    rig.sim.console_edit(rig.sim.store.get("svco-two"), {"units": {"cu-1": 1, "cu-2": 2}})
    return rig.run(scenario)


@pytest.mark.parametrize(("named", "other"), [("cu-2", "cu-1"), ("cu-1", "cu-2")])
def test_scale_acts_on_the_chosen_instance_only(named: str, other: str) -> None:
    rig = make_rig()
    result, after = _scale_two_instance_service(rig, named)
    assert rig.writes("ScaleService") == [
        {"serviceId": "svco-two", "instanceId": named, "deploymentReplicasCount": 4}
    ]
    assert result.note == f"instance {named}"
    replicas = {i.instance_id: i.replicas.desired for i in after.instances or ()}
    assert replicas == {named: 4, other: {"cu-1": 1, "cu-2": 2}[other]}


def test_scale_of_a_service_with_two_instances_and_none_chosen_is_refused_without_a_call() -> None:
    rig = make_rig()
    with pytest.raises(InvalidRequestError, match=r"does not pin one instance.*cu-1, cu-2"):
        _scale_two_instance_service(rig, None)
    assert not rig.writes("ScaleService")


def test_scale_refuses_a_chosen_instance_the_service_does_not_list() -> None:
    """A stale or hand-made observation cannot send a scale to an instance of another service."""
    rig = make_rig()
    rig.sim.add_service({"account": "acct", "service_id": "svco-a", "units": {"cu-1": 1}})

    async def scenario(provider: BaiduProvider) -> Any:
        observed = await provider.observe(rig.account, "svco-a")
        stale = observed.model_copy(update={"instance_id": "cu-9"})
        return await provider.apply(
            rig.account, Scale(service_id="svco-a", replicas=2), observed=stale
        )

    with pytest.raises(InvalidRequestError, match="has no instance cu-9"):
        rig.run(scenario)
    assert not rig.writes("ScaleService")


def test_scale_beyond_the_compute_unit_is_a_quota_error() -> None:
    rig = make_rig()
    rig.sim.add_service({"account": "acct", "service_id": "svco-a", "units": {"cu-1": 1}})
    with pytest.raises(QuotaError):
        _apply(rig, Scale(service_id="svco-a", replicas=9))


def test_stop_deactivates() -> None:
    rig = make_rig(services=1)
    result, after = _apply(rig, Stop(service_id="svco-00000"))
    assert result.call == "DeactivateService"
    assert rig.writes("DeactivateService") == [{"serviceId": "svco-00000"}]
    # The answer only says the operation was accepted; the service goes offline afterwards.
    assert after.phase is Phase.TRANSITIONING
    rig.sim.clock.advance(rig.sim.settings.stop_seconds)
    assert rig.run(lambda p: p.observe(rig.account, "svco-00000")).phase is Phase.STOPPED


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (Resume(service_id="svco-00000"), UnsupportedActionError, "no action to bring"),
        (
            SetRateLimit(service_id="svco-00000", rps=3, scope=RateLimitScope.PER_INSTANCE),
            UnsupportedActionError,
            "no API updates it",
        ),
        (ClearRateLimit(service_id="svco-00000"), UnsupportedActionError, "no API updates it"),
        (
            SetSchedule(service_id="svco-00000", stop_at=datetime.now(UTC) + timedelta(hours=1)),
            UnsupportedActionError,
            "no stop schedule",
        ),
        (Scale(service_id="svco-00000", replicas=0), InvalidRequestError, "stop it instead"),
    ],
    ids=["resume", "set-rate-limit", "clear-rate-limit", "set-schedule", "scale-to-zero"],
)
def test_what_qianfan_cannot_do_is_refused_without_a_call(
    change: Any, error: type[Exception], message: str
) -> None:
    rig = make_rig(services=1)
    with pytest.raises(error, match=message):
        _apply(rig, change)
    assert not rig.writes("ScaleService")
    assert not rig.writes("DeactivateService")
