"""Contract tests: the ModelArts v1 provider against the ModelArts simulator (in process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from virtual_clock import VirtualClock

from cloudinfer.cloud.credentials import HuaweiCredentials, Secret
from cloudinfer.cloud.errors import NotFoundError, UnsupportedActionError
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.huawei.provider import HuaweiProvider, new_huawei_budgets
from cloudinfer.cloud.model import (
    ClearSchedule,
    Cloud,
    Phase,
    RateLimitScope,
    Resume,
    Scale,
    SetRateLimit,
    SetSchedule,
    Stop,
    Support,
)
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudsim.huawei import HuaweiSim

T = TypeVar("T")
PROJECT = "0123456789abcdef0123456789abcdef"
AK = "HPUACONTRACTTEST0000"
SK = "contract-test-sk"


@dataclass
class Rig:
    sim: HuaweiSim
    clock: VirtualClock
    account: Account
    page_size: int

    def provider(self, client: httpx.AsyncClient) -> HuaweiProvider:
        return HuaweiProvider(
            client,
            clock=self.clock,
            budgets=new_huawei_budgets(self.clock),
            page_size=self.page_size,
        )

    def run(self, body: Callable[[HuaweiProvider], Awaitable[T]]) -> T:
        async def main() -> T:
            transport = httpx.ASGITransport(app=self.sim.asgi())
            async with new_async_client(transport=transport, trust_env=False) as client:
                return await body(self.provider(client))

        return self.clock.run(main())

    def count(self, action: str) -> int:
        return int(self.sim.journal.summary(action).get(action, {}).get("calls", 0))

    def writes(self, action: str) -> list[dict[str, Any]]:
        summary = self.sim.journal.summary(action)
        return [w["params"] for w in summary.get(action, {}).get("writes", [])]


def make_rig(*, services: int = 0, page_size: int = 1000, offset_mode: str = "page") -> Rig:
    sim = HuaweiSim(speed=0)
    sim.settings.huawei_offset_mode = offset_mode
    sim.add_account(sim.new_account({"name": "acct", "ak": AK, "sk": SK, "projects": [PROJECT]}))
    for i in range(services):
        sim.add_service({"account": "acct", "service_id": f"svc-{i:05d}", "replicas": 2})
    clock = VirtualClock(start=0.0, on_advance=sim.clock.advance)
    account = Account(
        name="ns/acct",
        cloud=Cloud.HUAWEI,
        region="cn-north-4",
        credentials=HuaweiCredentials(AK, Secret(SK), PROJECT),
        endpoint="http://modelarts.sim",
    )
    return Rig(sim, clock, account, page_size)


def test_provider_satisfies_the_protocol() -> None:
    assert isinstance(HuaweiProvider(httpx.AsyncClient()), CloudProvider)


def test_observation_reads_details_only_for_changed_services() -> None:
    rig = make_rig(services=1000)

    async def scenario(provider: HuaweiProvider) -> list[tuple[int, int]]:
        counts = []
        first = await provider.list_services(rig.account)
        counts.append((rig.count("ListServices"), rig.count("ShowService")))
        await provider.list_services(rig.account)
        counts.append((rig.count("ListServices"), rig.count("ShowService")))
        by_id = {s.service_id: s for s in first}
        for sid in ("svc-00001", "svc-00500", "svc-00999"):
            await provider.apply(
                rig.account, Scale(service_id=sid, replicas=4), observed=by_id[sid]
            )
        again = await provider.list_services(rig.account)
        counts.append((rig.count("ListServices"), rig.count("ShowService")))
        assert {s.service_id: s.replicas.desired for s in again}["svc-00500"] == 4
        return counts

    assert rig.run(scenario) == [(1, 1000), (2, 1000), (3, 1003)]


@pytest.mark.parametrize(
    ("offset_mode", "list_calls"),
    [("page", 3), ("item", 4)],
    ids=["offset-counts-pages", "offset-counts-items-detected-once"],
)
def test_paging_works_whatever_offset_counts(offset_mode: str, list_calls: int) -> None:
    rig = make_rig(services=250, page_size=100, offset_mode=offset_mode)
    observed = rig.run(lambda p: p.list_services(rig.account))
    assert sorted(s.service_id for s in observed) == [f"svc-{i:05d}" for i in range(250)]
    assert rig.count("ListServices") == list_calls


def test_observe_maps_fields_and_capabilities() -> None:
    rig = make_rig(services=1)
    seen = rig.run(lambda p: p.observe(rig.account, "svc-00000"))
    assert (seen.cloud, seen.phase, seen.raw_status) == (Cloud.HUAWEI, Phase.RUNNING, "running")
    assert (seen.replicas.desired, seen.replicas.ready) == (2, 2)
    assert seen.rate_limit is None and seen.scheduled_stop is None
    assert seen.capabilities.rate_limit is Support.UNSUPPORTED
    assert "new service version" in seen.capabilities.notes[SetRateLimit.field]


def test_observing_a_missing_service_is_not_found_with_the_request_id() -> None:
    rig = make_rig()
    with pytest.raises(NotFoundError) as caught:
        rig.run(lambda p: p.observe(rig.account, "nope"))
    assert caught.value.code == "ModelArts.3502"
    assert caught.value.request_id


def _apply_to_fresh(rig: Rig, change: Any) -> tuple[Any, Any]:
    async def scenario(provider: HuaweiProvider) -> tuple[Any, Any]:
        observed = await provider.observe(rig.account, "svc-00000")
        result = await provider.apply(rig.account, change, observed=observed)
        return result, await provider.observe(rig.account, "svc-00000")

    return rig.run(scenario)


def test_scale_uses_the_property_call() -> None:
    rig = make_rig(services=1)
    result, after = _apply_to_fresh(rig, Scale(service_id="svc-00000", replicas=3))
    model_id = rig.sim.get_service("svc-00000").extra["config"][0]["model_id"]
    assert (result.call, result.note) == ("UpdateServiceByProperty", None)
    assert rig.writes("UpdateServiceByProperty") == [
        {
            "changed_property": "instance_count",
            "configs": [{"model_id": model_id, "changed_value": "3"}],
        }
    ]
    assert after.replicas.desired == 3
    assert not rig.writes("UpdateService")


def test_scale_of_a_stopped_service_replaces_config_and_says_so() -> None:
    rig = make_rig()
    rig.sim.add_service(
        {"account": "acct", "service_id": "svc-00000", "replicas": 2, "status": "stopped"}
    )
    result, after = _apply_to_fresh(rig, Scale(service_id="svc-00000", replicas=5))
    assert result.call == "UpdateService"
    assert result.note and "replaced the whole config[]" in result.note
    (write,) = rig.writes("UpdateService")
    assert [entry["instance_count"] for entry in write["config"]] == [5]
    assert after.replicas.desired == 5


@pytest.mark.parametrize(
    ("change", "body", "phase"),
    [
        (Stop(service_id="svc-00000"), {"status": "stopped"}, Phase.TRANSITIONING),
        (ClearSchedule(service_id="svc-00000"), {"schedule": []}, Phase.RUNNING),
    ],
    ids=["stop", "clear-schedule"],
)
def test_status_and_schedule_clear_are_single_updates(change: Any, body: Any, phase: Phase) -> None:
    rig = make_rig(services=1)
    result, after = _apply_to_fresh(rig, change)
    assert result.call == "UpdateService"
    assert rig.writes("UpdateService") == [body]
    assert after.phase is phase


def test_resume_starts_a_stopped_service() -> None:
    rig = make_rig()
    rig.sim.add_service({"account": "acct", "service_id": "svc-00000", "status": "stopped"})
    result, after = _apply_to_fresh(rig, Resume(service_id="svc-00000"))
    assert result.call == "UpdateService"
    assert rig.writes("UpdateService") == [{"status": "running"}]
    assert after.phase is Phase.TRANSITIONING


def test_schedule_is_relative_and_reapplying_never_moves_it() -> None:
    rig = make_rig(services=1)
    stop_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    change = SetSchedule(service_id="svc-00000", stop_at=stop_at)

    async def scenario(provider: HuaweiProvider) -> Any:
        observed = await provider.observe(rig.account, "svc-00000")
        first = await provider.apply(rig.account, change, observed=observed)
        scheduled = await provider.observe(rig.account, "svc-00000")
        second = await provider.apply(rig.account, change, observed=scheduled)
        return first, scheduled, second

    first, scheduled, second = rig.run(scenario)
    assert first.call == "UpdateService"
    assert rig.writes("UpdateService") == [
        {"schedule": [{"type": "stop", "time_unit": "HOURS", "duration": 2}]}
    ]
    assert scheduled.scheduled_stop is not None
    assert abs(scheduled.scheduled_stop - stop_at) < timedelta(minutes=1)
    assert (second.call, second.note) == ("none", "the observed due_time matches")


def test_rate_limit_is_refused_without_a_call() -> None:
    rig = make_rig(services=1)
    change = SetRateLimit(service_id="svc-00000", rps=5, scope=RateLimitScope.PER_SERVICE)
    with pytest.raises(UnsupportedActionError, match="no RPS-limit field"):
        _apply_to_fresh(rig, change)
    assert not rig.writes("UpdateService")
