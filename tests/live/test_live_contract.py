"""The operator's own providers against a real cloud account: do the clouds still answer the
way the operator expects? Read-only unless a write service is named (tests/live/plan.py).

Run with `make test-live`; see docs/clouds/README.md#checking-a-real-account.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from cloudinfer.cloud.baidu.provider import BaiduProvider
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.huawei.provider import HuaweiProvider
from cloudinfer.cloud.model import ApplyResult, Cloud, Phase, Scale
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudinfer.cloud.tencent.provider import TencentProvider

from .conftest import LIVE_PLAN, WROTE
from .plan import POLL_SECONDS_VAR, WRITE_TIMEOUT_VAR, Write

T = TypeVar("T")
PROVIDERS: dict[Cloud, Callable[..., CloudProvider]] = {
    Cloud.TENCENT: TencentProvider,
    Cloud.HUAWEI: HuaweiProvider,
    Cloud.BAIDU: BaiduProvider,
}
DESCRIBED_AT_MOST = 3  # detail calls per cloud: enough to check the shape, cheap on quotas


@pytest.fixture
def account(request: pytest.FixtureRequest, live_cloud: Cloud) -> Account:
    return request.config.stash[LIVE_PLAN].accounts[live_cloud]


def _run(account: Account, body: Callable[[CloudProvider], Awaitable[T]]) -> T:
    async def main() -> T:
        async with new_async_client() as client:
            return await body(PROVIDERS[account.cloud](client))

    return asyncio.run(main())


def test_list_every_service(account: Account) -> None:
    """The observer's batched list: every service parses into the neutral model."""
    listed = _run(account, lambda p: p.list_services(account))
    ids = [s.service_id for s in listed]
    assert all(ids) and len(ids) == len(set(ids)), "a service id is empty or repeated"
    for service in listed:
        assert service.cloud is account.cloud
        assert service.phase is not Phase.UNKNOWN, (
            f"{service.service_id}: status {service.raw_status!r} is not in the operator's map"
        )
    print(f"{account.cloud.value}: {len(listed)} services listed")


def test_describe_what_the_list_returned(account: Account) -> None:
    """The observer's detail path agrees with the list on identity, phase and replicas."""

    async def body(provider: CloudProvider) -> list[tuple[object, object]]:
        listed = await provider.list_services(account)
        pairs: list[tuple[object, object]] = []
        for service in listed[:DESCRIBED_AT_MOST]:
            pairs.append((service, await provider.observe(account, service.service_id)))
        return pairs

    for listed, described in _run(account, body):
        assert (described.service_id, described.name) == (listed.service_id, listed.name)
        assert described.phase is listed.phase or Phase.TRANSITIONING in (
            described.phase,
            listed.phase,
        )


def _wait_for(account: Account, service_id: str, replicas: int) -> None:
    poll = float(os.environ.get(POLL_SECONDS_VAR, "10"))
    deadline = time.monotonic() + float(os.environ.get(WRITE_TIMEOUT_VAR, "900"))
    while True:
        seen = _run(account, lambda p: p.observe(account, service_id))
        if seen.phase is Phase.RUNNING and seen.replicas.desired == replicas:
            return
        if time.monotonic() >= deadline:  # a wait's timeout, not a timing assertion
            pytest.fail(
                f"{service_id} did not reach {replicas} replicas: {seen.phase}, "
                f"{seen.replicas.desired} desired"
            )
        time.sleep(poll)


@pytest.mark.live_write
def test_scale_the_named_service_and_back(
    request: pytest.FixtureRequest, account: Account, live_cloud: Cloud
) -> None:
    """Writes only to the service named in CLOUDINFER_LIVE_<CLOUD>_WRITE_SERVICE_ID."""
    write: Write = request.config.stash[LIVE_PLAN].writes[live_cloud]
    wrote = request.config.stash[WROTE]
    before = _run(account, lambda p: p.observe(account, write.service_id))
    assert before.phase is Phase.RUNNING, f"{write.service_id} must be running, is {before.phase}"
    original = before.replicas.desired
    assert original is not None and original != write.replicas, (
        f"{write.service_id} already has {original} replicas; choose another WRITE_REPLICAS"
    )

    def scale(target: int) -> None:
        result = _scale(account, write.service_id, target)
        wrote.append(
            f"{live_cloud.value} {result.call} {write.service_id} -> {target} replicas "
            f"(request {result.request_id})"
        )

    scale(write.replicas)
    try:
        _wait_for(account, write.service_id, write.replicas)
    finally:
        scale(original)  # put it back even when the first scale did not settle
    _wait_for(account, write.service_id, original)


def _scale(account: Account, service_id: str, replicas: int) -> ApplyResult:
    async def body(provider: CloudProvider) -> ApplyResult:
        observed = await provider.observe(account, service_id)
        change = Scale(service_id=service_id, replicas=replicas, reason="make test-live")
        return await provider.apply(account, change, observed=observed)

    return _run(account, body)
