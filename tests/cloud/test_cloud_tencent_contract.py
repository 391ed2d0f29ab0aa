"""Contract tests: the TI-ONE provider against the TI-ONE simulator (in process, over ASGI).

The simulator's clock is frozen and moves only with the test's virtual clock, so rate limits
and state transitions are deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from virtual_clock import VirtualClock

from cloudinfer.cloud.credentials import Secret, TencentCredentials
from cloudinfer.cloud.errors import ConflictError, NotFoundError
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.model import (
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Resume,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    Stop,
    combine,
)
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudinfer.cloud.tencent.provider import TencentProvider, new_tencent_budgets
from cloudsim.tencent import TencentSim

T = TypeVar("T")
SIM_START = 1_790_000_000.0  # 2026-09-21, virtual
SECRET_ID = "AKIDcontracttest0000000000000000"
SECRET_KEY = "contract-test-secret-key"


@dataclass
class Rig:
    sim: TencentSim
    clock: VirtualClock
    account: Account

    def run(self, body: Callable[[TencentProvider], Awaitable[T]]) -> T:
        async def main() -> T:
            transport = httpx.ASGITransport(app=self.sim.asgi())
            async with new_async_client(transport=transport, trust_env=False) as client:
                provider = TencentProvider(
                    client, clock=self.clock, budgets=new_tencent_budgets(self.clock)
                )
                return await body(provider)

        return self.clock.run(main())

    def calls(self, action: str) -> list[dict[str, Any]]:
        summary = self.sim.journal.summary(action)
        return summary.get(action, {}).get("entries", [])

    def writes(self, action: str) -> list[dict[str, Any]]:
        summary = self.sim.journal.summary(action)
        return [w["params"] for w in summary.get(action, {}).get("writes", [])]


def make_rig(*, partial_config: str = "available", services: int = 0) -> Rig:
    sim = TencentSim(speed=0, start=SIM_START)
    sim.add_account(
        sim.new_account(
            {
                "name": "acct",
                "secret_id": SECRET_ID,
                "secret_key": SECRET_KEY,
                "regions": ["ap-guangzhou"],
                "partial_config": partial_config,
            }
        )
    )
    for i in range(services):
        sim.add_service({"account": "acct", "service_id": f"ms-{i:05d}-1", "replicas": 2})
    clock = VirtualClock(start=0.0, on_advance=sim.clock.advance)
    account = Account(
        name="ns/acct",
        cloud=Cloud.TENCENT,
        region="ap-guangzhou",
        credentials=TencentCredentials(SECRET_ID, Secret(SECRET_KEY)),
        endpoint="http://tione.sim",
    )
    return Rig(sim, clock, account)


def test_provider_satisfies_the_protocol() -> None:
    assert isinstance(TencentProvider(httpx.AsyncClient()), CloudProvider)


def test_one_full_observation_of_1000_services_takes_10_list_calls() -> None:
    rig = make_rig(services=1000)
    observed = rig.run(lambda p: p.list_services(rig.account))
    assert len(observed) == 1000
    assert {s.service_id for s in observed} == {f"ms-{i:05d}-1" for i in range(1000)}
    assert len(rig.calls("DescribeModelServiceGroups")) == 10
    assert not rig.calls("DescribeModelService"), "no per-service reads"


def test_observe_maps_every_field() -> None:
    rig = make_rig()
    stop_at = datetime.fromtimestamp(SIM_START, UTC) + timedelta(hours=3)
    rig.sim.add_service(
        {
            "account": "acct",
            "service_id": "ms-abc-1",
            "name": "llm",
            "replicas": 3,
            "rps_enabled": True,
            "rps_limit": 22,
            "schedule_stop": True,
            "schedule_stop_time": stop_at.isoformat(),
        }
    )
    seen = rig.run(lambda p: p.observe(rig.account, "ms-abc-1"))
    assert (seen.service_id, seen.name, seen.cloud) == ("ms-abc-1", "llm", Cloud.TENCENT)
    assert (seen.replicas.desired, seen.replicas.ready) == (3, 3)
    assert seen.rate_limit == RateLimitSetting(rps=22, scope=RateLimitScope.PER_INSTANCE)
    assert seen.scheduled_stop == stop_at
    assert (seen.phase, seen.raw_status, seen.platform_stop) == (Phase.RUNNING, "Normal", None)
    assert seen.updated_at == datetime.fromtimestamp(SIM_START, UTC)


def test_a_disabled_schedule_with_a_time_is_no_schedule() -> None:
    """ScheduleStop decides, not the presence of a time (docs/clouds/tencent-tione.md#field-map)."""
    rig = make_rig()
    rig.sim.add_service(
        {
            "account": "acct",
            "service_id": "ms-abc-1",
            "schedule_stop": False,
            "schedule_stop_time": "2026-12-01T00:00:00+08:00",
        }
    )
    assert rig.run(lambda p: p.observe(rig.account, "ms-abc-1")).scheduled_stop is None


def test_observing_a_missing_service_is_not_found() -> None:
    rig = make_rig()
    with pytest.raises(NotFoundError) as caught:
        rig.run(lambda p: p.observe(rig.account, "ms-nope-1"))
    assert caught.value.request_id


STOP_AT = datetime.fromtimestamp(SIM_START, UTC) + timedelta(days=1)

CHANGES = [
    (
        Scale(service_id="ms-00000-1", replicas=5),
        "ModifyModelService",
        {"ServiceId": "ms-00000-1", "ServiceAction": "SCALE", "Replicas": 5},
    ),
    (
        Stop(service_id="ms-00000-1"),
        "ModifyModelService",
        {"ServiceId": "ms-00000-1", "ServiceAction": "STOP"},
    ),
    (
        SetRateLimit(service_id="ms-00000-1", rps=22, scope=RateLimitScope.PER_INSTANCE),
        "ModifyModelServicePartialConfig",
        {
            "ServiceId": "ms-00000-1",
            "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 22},
        },
    ),
    (
        ClearRateLimit(service_id="ms-00000-1"),
        "ModifyModelServicePartialConfig",
        {"ServiceId": "ms-00000-1", "ServiceLimit": {"EnableInstanceRpsLimit": False}},
    ),
    (
        SetSchedule(service_id="ms-00000-1", stop_at=STOP_AT),
        "ModifyModelServicePartialConfig",
        {
            "ServiceId": "ms-00000-1",
            "ScheduledAction": {
                "ScheduleStop": True,
                "ScheduleStopTime": STOP_AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        },
    ),
    (
        ClearSchedule(service_id="ms-00000-1"),
        "ModifyModelServicePartialConfig",
        {"ServiceId": "ms-00000-1", "ScheduledAction": {"ScheduleStop": False}},
    ),
]


@pytest.mark.parametrize(("change", "call", "body"), CHANGES, ids=[c.kind for c, _, _ in CHANGES])
def test_each_change_is_one_minimal_call(change: Any, call: str, body: dict[str, Any]) -> None:
    rig = make_rig(services=1)

    async def scenario(provider: TencentProvider) -> Any:
        observed = await provider.observe(rig.account, "ms-00000-1")
        result = await provider.apply(rig.account, change, observed=observed)
        return result, await provider.observe(rig.account, "ms-00000-1")

    result, after = rig.run(scenario)
    assert (result.call, result.note) == (call, None)
    assert result.request_id
    assert rig.writes(call) == [body]
    expected_after = {
        "scale": lambda s: s.replicas.desired == 5,
        "stop": lambda s: s.phase in {Phase.TRANSITIONING, Phase.STOPPED},
        "set-rate-limit": lambda s: s.rate_limit is not None and s.rate_limit.rps == 22,
        "clear-rate-limit": lambda s: s.rate_limit is None,
        "set-schedule": lambda s: s.scheduled_stop == STOP_AT,
        "clear-schedule": lambda s: s.scheduled_stop is None,
    }[change.kind]
    assert expected_after(after)


@pytest.mark.parametrize("partial_config", ["available", "removed"])
def test_a_combined_change_is_one_call_carrying_both_fields(partial_config: str) -> None:
    rig = make_rig(partial_config=partial_config, services=1)
    change = combine(
        (
            SetRateLimit(service_id="ms-00000-1", rps=9, scope=RateLimitScope.PER_INSTANCE),
            SetSchedule(service_id="ms-00000-1", stop_at=STOP_AT),
        )
    )

    async def scenario(provider: TencentProvider) -> Any:
        observed = await provider.observe(rig.account, "ms-00000-1")
        result = await provider.apply(rig.account, change, observed=observed)
        return result, await provider.observe(rig.account, "ms-00000-1")

    result, after = rig.run(scenario)
    body = {
        "ServiceId": "ms-00000-1",
        "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 9},
        "ScheduledAction": {
            "ScheduleStop": True,
            "ScheduleStopTime": STOP_AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    # Without PartialConfig the fallback is still one call, with only these two fields.
    call = {"available": "ModifyModelServicePartialConfig", "removed": "ModifyModelService"}
    assert result.call == call[partial_config]
    assert rig.writes(result.call) == [body]
    assert after.rate_limit == RateLimitSetting(rps=9, scope=RateLimitScope.PER_INSTANCE)
    assert after.scheduled_stop == STOP_AT


def test_stop_then_resume_restores_the_replicas() -> None:
    rig = make_rig(services=1)

    async def scenario(provider: TencentProvider) -> Any:
        observed = await provider.observe(rig.account, "ms-00000-1")
        await provider.apply(rig.account, Stop(service_id="ms-00000-1"), observed=observed)
        await rig.clock.sleep(60)  # the stop settles in simulated time
        stopped = await provider.observe(rig.account, "ms-00000-1")
        await provider.apply(rig.account, Resume(service_id="ms-00000-1"), observed=stopped)
        await rig.clock.sleep(60)
        return stopped, await provider.observe(rig.account, "ms-00000-1")

    stopped, resumed = rig.run(scenario)
    assert (stopped.phase, stopped.replicas.desired) == (Phase.STOPPED, 0)
    assert (resumed.phase, resumed.replicas.desired, resumed.replicas.ready) == (
        Phase.RUNNING,
        2,
        2,
    )


def test_partial_config_removed_falls_back_once_per_account() -> None:
    rig = make_rig(partial_config="removed", services=2)

    async def scenario(provider: TencentProvider) -> Any:
        results = []
        for sid in ("ms-00000-1", "ms-00001-1"):
            observed = await provider.observe(rig.account, sid)
            change = SetRateLimit(service_id=sid, rps=10, scope=RateLimitScope.PER_INSTANCE)
            results.append(await provider.apply(rig.account, change, observed=observed))
        return results, provider.capabilities(rig.account)

    results, capabilities = rig.run(scenario)
    assert [r.call for r in results] == ["ModifyModelService", "ModifyModelService"]
    assert all(r.note and "PartialConfig is unavailable" in r.note for r in results)
    assert len(rig.calls("ModifyModelServicePartialConfig")) == 1, "tried once, then remembered"
    assert rig.writes("ModifyModelService") == [
        {"ServiceId": sid, "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 10}}
        for sid in ("ms-00000-1", "ms-00001-1")
    ]
    assert ServiceField.RATE_LIMIT in capabilities.notes


def test_platform_stops_are_never_fought() -> None:
    rig = make_rig(services=1)
    rig.sim.platform_stop(rig.sim.get_service("ms-00000-1"), "arrears")

    async def scenario(provider: TencentProvider) -> Any:
        observed = await provider.observe(rig.account, "ms-00000-1")
        with pytest.raises(ConflictError, match="ARREARS_STOP"):
            await provider.apply(rig.account, Resume(service_id="ms-00000-1"), observed=observed)
        return observed

    observed = rig.run(scenario)
    assert observed.platform_stop == "ARREARS_STOP"
    assert not rig.writes("ModifyModelService"), "no call was made"


def test_500_writes_against_the_20_per_second_budget_are_never_throttled() -> None:
    rig = make_rig(services=50)

    async def scenario(provider: TencentProvider) -> None:
        observed = {s.service_id: s for s in await provider.list_services(rig.account)}
        changes = [
            SetRateLimit(service_id=sid, rps=float(n + 1), scope=RateLimitScope.PER_INSTANCE)
            for n in range(10)
            for sid in sorted(observed)
        ]
        await asyncio.gather(
            *(provider.apply(rig.account, c, observed=observed[c.service_id]) for c in changes)
        )

    rig.run(scenario)
    writes = rig.sim.journal.summary("ModifyModelServicePartialConfig")[
        "ModifyModelServicePartialConfig"
    ]
    assert writes["calls"] == 500
    assert writes["throttled"] == 0
    assert writes["errors"] == 0
