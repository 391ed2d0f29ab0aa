"""The Qianfan provider, on the console v2 API (issue 6, docs/clouds/baidu-qianfan.md).

- List: `DescribeServices` in pages of 100 (its maximum), following `nextMarker`.
- Replicas: `ScaleService` on one compute-unit `instanceId` of the service: the one
  `cloud/instances.py` chose from `spec.baidu.instanceId`, or the service's only one.
- Stop: `DeactivateService`. There is no resume, no RPS update and no schedule: capabilities
  say so and `apply` refuses them without calling the cloud, rather than faking them.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any, Final

import httpx

from cloudinfer.cloud.baidu import limits
from cloudinfer.cloud.baidu.envelope import CLOUD, unwrap
from cloudinfer.cloud.baidu.parse import CAPABILITIES, observed_service
from cloudinfer.cloud.baidu.signer import BaiduSigner
from cloudinfer.cloud.budget import RateBudgets
from cloudinfer.cloud.clock import Clock, SystemClock, WallClock
from cloudinfer.cloud.credentials import BaiduCredentials
from cloudinfer.cloud.errors import (
    InvalidRequestError,
    MalformedResponseError,
    UnsupportedActionError,
)
from cloudinfer.cloud.exchange import Reply, send
from cloudinfer.cloud.listcache import ParsedItems
from cloudinfer.cloud.model import (
    ApplyResult,
    Capabilities,
    Change,
    Cloud,
    Combined,
    ObservedService,
    Scale,
    Stop,
)
from cloudinfer.cloud.payload import Payload
from cloudinfer.cloud.provider import Account, Progress
from cloudinfer.cloud.retry import RetryPolicy, call_with_budget

PUBLIC_ENDPOINT: Final = "https://qianfan.baidubce.com"
"""The single console host (docs/clouds/baidu-qianfan.md#endpoint)."""
ROUTE: Final = "/v2/service"
LIST_PAGE_SIZE: Final = 100
"""`DescribeServices` maxKeys maximum; larger values are clamped
(docs/clouds/baidu-qianfan.md#reading-services)."""


def new_baidu_budgets(clock: Clock) -> RateBudgets:
    return RateBudgets(
        limits.BAIDU_RATE_LIMITS, default=limits.BAIDU_DEFAULT_RATE_LIMIT, clock=clock
    )


class BaiduProvider:
    """`CloudProvider` for Qianfan. One instance serves many accounts."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
        wall_clock: WallClock = time.time,
        budgets: RateBudgets | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._wall_clock = wall_clock
        self._budgets = budgets or new_baidu_budgets(self._clock)
        self._retry = retry or RetryPolicy()
        self._parsed: ParsedItems[ObservedService] = ParsedItems()

    @property
    def cloud(self) -> Cloud:
        return Cloud.BAIDU

    def capabilities(self, account: Account) -> Capabilities:
        return CAPABILITIES

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        """Pages of many services: `progress` is not called (the list returns as soon).
        A service whose item is unchanged since the last list is not parsed again."""
        services: list[ObservedService] = []
        listing = self._parsed.listing(account.name, CAPABILITIES)
        marker = ""
        used: set[str] = set()
        while True:
            if marker in used:
                # A marker that does not advance would page forever.
                raise MalformedResponseError(
                    f"pagination does not advance: nextMarker {marker!r} was already used",
                    cloud=CLOUD,
                    action=limits.DESCRIBE_SERVICES,
                )
            used.add(marker)
            params: dict[str, Any] = {"maxKeys": LIST_PAGE_SIZE}
            if marker:
                params["marker"] = marker
            reply = await self._call(account, limits.DESCRIBE_SERVICES, params)
            result = _result(reply, limits.DESCRIBE_SERVICES)
            items = result.object_list("serviceList", optional=True)
            services.extend(
                listing.parse(item, partial(_observed, result, i, item))
                for i, item in enumerate(items)
            )
            page = result.optional_object("pageInfo")
            marker = (page.optional_string("nextMarker") if page is not None else None) or ""
            truncated = page is not None and page.boolean("isTruncated", default=False)
            if not truncated or not marker:
                listing.done()
                return services
            del reply, result, page  # fetch the next page without this one in memory

    async def observe(self, account: Account, service_id: str) -> ObservedService:
        reply = await self._call(account, limits.DESCRIBE_SERVICE, {"serviceId": service_id})
        return observed_service(_result(reply, limits.DESCRIBE_SERVICE))

    async def apply(
        self, account: Account, change: Change, *, observed: ObservedService
    ) -> ApplyResult:
        sid = change.service_id
        if isinstance(change, Scale):
            instance = _target_instance(observed)
            if change.replicas < 1:
                # deploymentReplicasCount 0 removes the compute unit from the service
                # (docs/clouds/baidu-qianfan.md#writing-changes).
                raise InvalidRequestError(
                    "scaling Qianfan to 0 would detach its compute unit; stop it instead",
                    cloud=CLOUD,
                    action=limits.SCALE_SERVICE,
                )
            body = {
                "serviceId": sid,
                "instanceId": instance,
                "deploymentReplicasCount": change.replicas,
            }
            reply = await self._call(account, limits.SCALE_SERVICE, body, write=True)
            return ApplyResult(
                change=change,
                call=limits.SCALE_SERVICE,
                request_id=reply.request_id,
                note=f"instance {instance}",
            )
        if isinstance(change, Stop):
            reply = await self._call(
                account, limits.DEACTIVATE_SERVICE, {"serviceId": sid}, write=True
            )
            return ApplyResult(
                change=change, call=limits.DEACTIVATE_SERVICE, request_id=reply.request_id
            )
        if isinstance(change, Combined):
            raise UnsupportedActionError(
                f"{sid}: Qianfan has no call that changes several fields", cloud=CLOUD
            )
        note = CAPABILITIES.notes.get(change.field, f"{change.kind} is not supported")
        raise UnsupportedActionError(f"{sid}: {note}", cloud=CLOUD, action=change.kind)

    async def _call(
        self, account: Account, action: str, params: dict[str, Any], *, write: bool = False
    ) -> Reply:
        credentials = account.credentials
        if not isinstance(credentials, BaiduCredentials):
            raise InvalidRequestError(
                f"account {account.name} has no Baidu credentials", cloud=CLOUD, action=action
            )
        signer = BaiduSigner(credentials, clock=self._wall_clock)
        url = (account.endpoint or PUBLIC_ENDPOINT).rstrip("/") + ROUTE
        body = json.dumps(params).encode()

        async def attempt() -> Reply:
            request = self._client.build_request(
                "POST",
                url,
                params={"Action": action},
                content=body,
                headers={"Content-Type": "application/json"},
            )
            response = await send(self._client, request, auth=signer, cloud=CLOUD, action=action)
            return unwrap(response, action=action)

        bucket = self._budgets.bucket(account.name, action)
        return await call_with_budget(
            attempt, bucket=bucket, clock=self._clock, policy=self._retry,
            resend_unanswered=not write,
        )  # fmt: skip


def _target_instance(observed: ObservedService) -> str:
    """The compute-unit instance to scale: the one `select_instance` chose, else the only one.

    Refuses (no call) when the observation does not pin exactly one instance of the service,
    so a scale can never land on an instance the spec did not mean.
    """
    ids = [unit.instance_id for unit in observed.instances or ()]
    chosen = observed.instance_id
    if chosen is None and len(ids) == 1:
        chosen = ids[0]
    if chosen is None or chosen not in ids:
        problem = f"has no instance {chosen}" if chosen else "does not pin one instance"
        raise InvalidRequestError(
            f"{observed.service_id} {problem} among its {len(ids)} compute-unit instances "
            f"({', '.join(ids) or 'none'}); name the one to scale in spec.baidu.instanceId",
            cloud=CLOUD,
            action=limits.SCALE_SERVICE,
        )
    return chosen


def _observed(result: Payload, index: int, item: dict[str, Any]) -> ObservedService:
    return observed_service(result.element("serviceList", index, item))


def _result(reply: Reply, action: str) -> Payload:
    return Payload(reply.data, CLOUD, action, reply.request_id).object("result")
