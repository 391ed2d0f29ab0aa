"""Contract tests over real HTTP on loopback: each provider against its simulator served by
uvicorn, on the system clock, including injected faults and clock skew."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from cloudinfer.cloud.backoff import Backoff
from cloudinfer.cloud.baidu.provider import BaiduProvider
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.errors import ClockSkewError, CloudError, NoAnswerError, TransientError
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.huawei.provider import HuaweiProvider
from cloudinfer.cloud.model import Cloud, ObservedService, Scale
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudinfer.cloud.retry import RetryPolicy
from cloudinfer.cloud.tencent.provider import TencentProvider
from cloudsim.server import RunningSim, serve_in_thread

T = TypeVar("T")
PROJECT = "0123456789abcdef0123456789abcdef"
SHORT_TIMEOUT = httpx.Timeout(0.5)
FAST_RETRY = RetryPolicy(backoff=Backoff(base=0.01))
"""Real sleeps here: keep the backoff short so the suite stays fast."""


@dataclass
class CloudCase:
    cloud: Cloud
    provider: Callable[..., CloudProvider]
    account_spec: dict[str, Any]
    service_spec: dict[str, Any]
    credentials: Any
    region: str
    service_id: str
    list_action: str
    scale_action: str


CASES = [
    CloudCase(
        Cloud.TENCENT,
        TencentProvider,
        {"name": "acct", "secret_id": "AKIDloopback0000", "secret_key": "sk-tencent"},
        {"account": "acct", "service_id": "ms-loop-1", "replicas": 1},
        TencentCredentials("AKIDloopback0000", Secret("sk-tencent")),
        "ap-guangzhou",
        "ms-loop-1",
        "DescribeModelServiceGroups",
        "ModifyModelService",
    ),
    CloudCase(
        Cloud.HUAWEI,
        HuaweiProvider,
        {"name": "acct", "ak": "HWAKloopback", "sk": "sk-huawei", "projects": [PROJECT]},
        {"account": "acct", "service_id": "svc-loop", "replicas": 1},
        HuaweiCredentials("HWAKloopback", Secret("sk-huawei"), PROJECT),
        "cn-north-4",
        "svc-loop",
        "ListServices",
        "UpdateServiceByProperty",
    ),
    CloudCase(
        Cloud.BAIDU,
        BaiduProvider,
        {"name": "acct", "ak": "ALTAKloopback", "sk": "sk-baidu"},
        {"account": "acct", "service_id": "svco-loop", "units": {"cu-1": 1}},
        BaiduCredentials("ALTAKloopback", Secret("sk-baidu")),
        "bj",
        "svco-loop",
        "DescribeServices",
        "ScaleService",
    ),
]


@pytest.fixture(params=CASES, ids=[c.cloud.value for c in CASES])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[CloudCase, RunningSim, Account]]:
    case: CloudCase = request.param
    handle = serve_in_thread(case.cloud.value, speed=1.0)
    try:
        sim = handle.sim
        sim.add_account(sim.new_account(case.account_spec))
        sim.add_service(case.service_spec)
        account = Account(
            name="ns/acct",
            cloud=case.cloud,
            region=case.region,
            credentials=case.credentials,
            endpoint=handle.base_url,
        )
        yield case, handle, account
    finally:
        handle.stop()


def _run(case: CloudCase, body: Callable[[CloudProvider], Awaitable[T]]) -> T:
    async def main() -> T:
        async with new_async_client(trust_env=False, timeout=SHORT_TIMEOUT) as client:
            return await body(case.provider(client, retry=FAST_RETRY))

    return asyncio.run(main())


def _calls(handle: RunningSim, action: str) -> int:
    return int(handle.sim.journal.summary(action).get(action, {}).get("calls", 0))


def test_list_observe_and_scale_over_http(
    served: tuple[CloudCase, RunningSim, Account],
) -> None:
    case, handle, account = served

    async def body(provider: CloudProvider) -> tuple[list[ObservedService], ObservedService]:
        listed = await provider.list_services(account)
        (observed,) = [s for s in listed if s.service_id == case.service_id]
        result = await provider.apply(
            account, Scale(service_id=case.service_id, replicas=2), observed=observed
        )
        assert result.call == case.scale_action
        assert result.request_id
        return listed, await provider.observe(account, case.service_id)

    listed, after = _run(case, body)
    assert [s.service_id for s in listed] == [case.service_id]
    assert after.replicas.desired == 2
    assert _calls(handle, case.list_action) == 1


@pytest.mark.parametrize("kind", ["html", "malformed", "reset"])
def test_a_single_fault_is_retried_transparently(
    served: tuple[CloudCase, RunningSim, Account], kind: str
) -> None:
    case, handle, account = served
    fault = handle.sim.faults.add({"action": case.list_action, "kind": kind, "count": 1})
    listed = _run(case, lambda p: p.list_services(account))
    assert [s.service_id for s in listed] == [case.service_id]
    # The fault fired on the first call; the retry got the answer. (The simulator's journal
    # does not record calls whose connection it reset, so count the fault's firings.)
    assert fault.fired == 1


def test_a_persistent_gateway_page_becomes_a_transient_error(
    served: tuple[CloudCase, RunningSim, Account],
) -> None:
    case, handle, account = served
    handle.sim.faults.add({"action": case.list_action, "kind": "html"})
    with pytest.raises(TransientError, match="HTML page"):
        _run(case, lambda p: p.list_services(account))
    assert _calls(handle, case.list_action) == 4, "one call and three retries"


def test_a_hung_call_times_out_and_is_retried(
    served: tuple[CloudCase, RunningSim, Account],
) -> None:
    case, handle, account = served
    fault = handle.sim.faults.add(
        {"action": case.list_action, "kind": "hang", "latency": 30, "count": 1}
    )
    listed = _run(case, lambda p: p.list_services(account))
    assert [s.service_id for s in listed] == [case.service_id]
    assert fault.fired == 1


@pytest.mark.parametrize("kind", ["hang", "reset"])
def test_a_write_left_unanswered_is_not_sent_again(
    served: tuple[CloudCase, RunningSim, Account], kind: str
) -> None:
    """The cloud may have carried out a write whose answer never came: the provider hands
    the error back instead of sending it again (a list, above, is retried)."""
    case, handle, account = served
    fault = handle.sim.faults.add(
        {"action": case.scale_action, "kind": kind, "latency": 30, "count": 1}
    )

    async def body(provider: CloudProvider) -> None:
        (observed,) = await provider.list_services(account)
        await provider.apply(
            account, Scale(service_id=case.service_id, replicas=2), observed=observed
        )

    with pytest.raises(NoAnswerError, match="may have carried it out"):
        _run(case, body)
    assert fault.fired == 1  # had it been sent again, the second call would have succeeded


def test_clock_skew_is_recognised(served: tuple[CloudCase, RunningSim, Account]) -> None:
    case, handle, account = served
    handle.sim.settings.auth_skew = 3600.0  # the server's clock is an hour ahead of ours
    with pytest.raises(CloudError) as caught:
        _run(case, lambda p: p.observe(account, case.service_id))
    assert isinstance(caught.value, ClockSkewError)
