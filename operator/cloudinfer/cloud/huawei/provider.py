"""The ModelArts provider, on the v1 services API as in the seed
(issue 6, docs/clouds/huawei-modelarts.md).

- List: `GET /v1/{project_id}/services` in pages; list items lack `config`, so a detail read
  follows only for services whose `update_time` moved since the last one (cached per account).
- Replicas: the partial `PUT …/property` (`changed_property: instance_count`). Only where it
  cannot apply (the service is not running) is the whole `config[]` replaced, and the result
  says so.
- Schedule: a duration relative to now, computed from the desired absolute time; skipped when
  the observed `due_time` already matches, so re-applying never moves it.
- Start and stop through `status`. No RPS limit: v1 has no field (see capabilities).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx

from cloudinfer.cloud.budget import RateBudgets
from cloudinfer.cloud.clock import Clock, SystemClock, WallClock
from cloudinfer.cloud.credentials import HuaweiCredentials
from cloudinfer.cloud.errors import InvalidRequestError, UnsupportedActionError
from cloudinfer.cloud.exchange import Reply, send
from cloudinfer.cloud.huawei import limits
from cloudinfer.cloud.huawei.envelope import CLOUD, unwrap
from cloudinfer.cloud.huawei.parse import CAPABILITIES, Deployment, deployment, observed_service
from cloudinfer.cloud.huawei.signer import HuaweiSigner
from cloudinfer.cloud.model import (
    SCHEDULE_TOLERANCE,
    ApplyResult,
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    ObservedService,
    Resume,
    Scale,
    SetRateLimit,
    SetSchedule,
    Stop,
)
from cloudinfer.cloud.payload import Payload
from cloudinfer.cloud.provider import Account, Progress
from cloudinfer.cloud.retry import RetryPolicy, call_with_budget

LIST_PAGE_SIZE: Final = 1000
"""The v1 list's documented default `limit` (docs/clouds/huawei-modelarts.md#reading-services); no
maximum is documented, so we ask for no more than the server would send anyway."""
PROPERTY_STATES: Final = frozenset({"running", "concerning", "abnormal"})
"""Where `PUT …/property` is allowed (UpdateServiceByProperty doc)."""
SPECIAL_ENDPOINTS: Final = {"ap-southeast-1": "https://modelarts.ap-southeast-1.myhuaweicloud.cn"}
"""Regions whose endpoint breaks the pattern, as written in the SDK
(docs/clouds/huawei-modelarts.md#endpoint)."""

OffsetMode = Literal["page", "item"]
"""Whether the list's `offset` counts pages (the doc: "起始页") or items [UNVERIFIED]."""


def new_huawei_budgets(clock: Clock) -> RateBudgets:
    return RateBudgets(
        limits.HUAWEI_RATE_LIMITS, default=limits.HUAWEI_DEFAULT_RATE_LIMIT, clock=clock
    )


def endpoint_for(region: str) -> str:
    return SPECIAL_ENDPOINTS.get(region, f"https://modelarts.{region}.myhuaweicloud.com")


class HuaweiProvider:
    """`CloudProvider` for ModelArts v1. One instance serves many accounts."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
        wall_clock: WallClock = time.time,
        budgets: RateBudgets | None = None,
        retry: RetryPolicy | None = None,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._wall_clock = wall_clock
        self._budgets = budgets or new_huawei_budgets(self._clock)
        self._retry = retry or RetryPolicy()
        self._page_size = page_size
        self._deployments: dict[tuple[str, str], tuple[object, Deployment]] = {}
        """(account, service id) -> (list `update_time` it was read at, deployment)."""
        self._offset_mode: dict[str, OffsetMode] = {}

    @property
    def cloud(self) -> Cloud:
        return Cloud.HUAWEI

    def capabilities(self, account: Account) -> Capabilities:
        return CAPABILITIES

    # ----- observation -----------------------------------------------------------------------

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        items = await self._list_items(account)
        observed = []
        for item in items:
            sid = item.string("service_id")
            cached = self._deployments.get((account.name, sid))
            stamp = item.data.get("update_time")
            if cached is not None and cached[0] == stamp:
                observed.append(observed_service(item, cached[1]))
            else:
                observed.append(await self.observe(account, sid))
            if progress is not None:
                progress(observed[-1])
        known = {s.service_id for s in observed}
        for key in [k for k in self._deployments if k[0] == account.name and k[1] not in known]:
            del self._deployments[key]
        return observed

    async def _list_items(self, account: Account) -> list[Payload]:
        """Every list item, detecting once per account whether `offset` counts pages or items."""
        items: dict[str, Payload] = {}
        page = 0
        while True:
            mode = self._offset_mode.get(account.name, "page")
            offset = page if mode == "page" else len(items)
            query = {"infer_type": "real-time", "offset": offset, "limit": self._page_size}
            reply = await self._call(account, limits.LIST_SERVICES, "GET", "", query=query)
            body = Payload(reply.data, CLOUD, limits.LIST_SERVICES, reply.request_id)
            batch = body.objects("services", optional=True)
            fresh = [i for i in batch if i.string("service_id") not in items]
            if page == 1 and mode == "page" and batch and len(fresh) < len(batch):
                # Page 1 overlapped page 0: this server counts items. Re-read from there.
                self._offset_mode[account.name] = "item"
                continue
            items.update((i.string("service_id"), i) for i in fresh)
            page += 1
            if not fresh or len(items) >= body.integer("total_count"):
                return list(items.values())

    async def observe(self, account: Account, service_id: str) -> ObservedService:
        reply = await self._call(account, limits.SHOW_SERVICE, "GET", f"/{service_id}")
        detail = Payload(reply.data, CLOUD, limits.SHOW_SERVICE, reply.request_id)
        found = deployment(detail)
        self._deployments[(account.name, service_id)] = (detail.data.get("update_time"), found)
        return observed_service(detail, found)

    # ----- changes -----------------------------------------------------------------------------

    async def apply(
        self, account: Account, change: Change, *, observed: ObservedService
    ) -> ApplyResult:
        sid = change.service_id
        if isinstance(change, Scale):
            return await self._scale(account, change, observed)
        if isinstance(change, Stop | Resume):
            status = "stopped" if isinstance(change, Stop) else "running"
            return await self._update(account, change, {"status": status})
        if isinstance(change, SetSchedule):
            return await self._set_schedule(account, change, observed)
        if isinstance(change, ClearSchedule):
            result = await self._update(account, change, {"schedule": []})
            return result.model_copy(
                update={"note": "cleared with schedule=[]; the v1 doc does not say how to clear"}
            )
        if isinstance(change, SetRateLimit | ClearRateLimit):
            raise UnsupportedActionError(
                f"{sid}: {CAPABILITIES.notes[change.field]}", cloud=CLOUD, action=change.kind
            )
        raise InvalidRequestError(f"unknown change {change!r}", cloud=CLOUD)

    async def _scale(
        self, account: Account, change: Scale, observed: ObservedService
    ) -> ApplyResult:
        sid = change.service_id
        if change.replicas < 1:
            raise InvalidRequestError(
                "ModelArts v1 needs at least one instance; stop the service instead",
                cloud=CLOUD,
                action=limits.UPDATE_SERVICE_BY_PROPERTY,
            )
        found = self._deployments.get((account.name, sid))
        current = found[1] if found is not None else None
        if current is None:
            await self.observe(account, sid)
            current = self._deployments[(account.name, sid)][1]
        if len(current.config) != 1:
            raise InvalidRequestError(
                f"{sid} serves {len(current.config)} model versions; scaling needs one",
                cloud=CLOUD,
                action=limits.UPDATE_SERVICE_BY_PROPERTY,
            )
        if observed.raw_status in PROPERTY_STATES:
            body = {
                "changed_property": "instance_count",
                "configs": [
                    {"model_id": current.model_ids[0], "changed_value": str(change.replicas)}
                ],
            }
            reply = await self._call(
                account, limits.UPDATE_SERVICE_BY_PROPERTY, "PUT", f"/{sid}/property", body=body
            )
            return ApplyResult(
                change=change, call=limits.UPDATE_SERVICE_BY_PROPERTY, request_id=reply.request_id
            )
        config = [{**_config_fields(current.config[0]), "instance_count": change.replicas}]
        result = await self._update(account, change, {"config": config})
        return result.model_copy(
            update={
                "note": (
                    f"the property update cannot apply while {observed.raw_status}; replaced the "
                    "whole config[] with only instance_count changed"
                )
            }
        )

    async def _set_schedule(
        self, account: Account, change: SetSchedule, observed: ObservedService
    ) -> ApplyResult:
        due = observed.scheduled_stop
        if due is not None and abs(due - change.stop_at) < SCHEDULE_TOLERANCE:
            return ApplyResult(change=change, call="none", note="the observed due_time matches")
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        minutes = math.ceil((change.stop_at - now).total_seconds() / 60)
        if minutes < 1:
            raise InvalidRequestError(
                f"the stop time {change.stop_at.isoformat()} is not in the future",
                cloud=CLOUD,
                action=limits.UPDATE_SERVICE,
            )
        return await self._update(account, change, {"schedule": [_relative_stop(minutes)]})

    async def _update(self, account: Account, change: Change, body: dict[str, Any]) -> ApplyResult:
        reply = await self._call(
            account, limits.UPDATE_SERVICE, "PUT", f"/{change.service_id}", body=body
        )
        return ApplyResult(change=change, call=limits.UPDATE_SERVICE, request_id=reply.request_id)

    # ----- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        account: Account,
        action: str,
        method: str,
        suffix: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Reply:
        credentials = account.credentials
        if not isinstance(credentials, HuaweiCredentials):
            raise InvalidRequestError(
                f"account {account.name} has no Huawei credentials", cloud=CLOUD, action=action
            )
        signer = HuaweiSigner(credentials, clock=self._wall_clock)
        base = (account.endpoint or endpoint_for(account.region)).rstrip("/")
        url = f"{base}/v1/{credentials.project_id}/services{suffix}"
        content = json.dumps(body).encode() if body is not None else b""

        async def attempt() -> Reply:
            request = self._client.build_request(
                method,
                url,
                params=query,
                content=content,
                headers={"Content-Type": "application/json"},
            )
            response = await send(self._client, request, auth=signer, cloud=CLOUD, action=action)
            return unwrap(response, action=action)

        bucket = self._budgets.bucket(account.name, action)
        return await call_with_budget(
            attempt, bucket=bucket, clock=self._clock, policy=self._retry,
            resend_unanswered=method == "GET",  # a PUT may have been carried out
        )  # fmt: skip


CONFIG_KEYS: Final = (
    "model_id",
    "weight",
    "specification",
    "instance_count",
    "custom_spec",
    "envs",
    "cluster_id",
)
"""The `config[]` fields an update accepts (docs/clouds/huawei-modelarts.md#writing-changes); the
detail adds read-only ones."""


def _config_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in CONFIG_KEYS if key in entry and entry[key] not in (None, {})}


def _relative_stop(minutes: int) -> dict[str, Any]:
    """The coarsest unit that states `minutes` exactly."""
    for unit, size in (("DAYS", 1440), ("HOURS", 60)):
        if minutes % size == 0:
            return {"type": "stop", "time_unit": unit, "duration": minutes // size}
    return {"type": "stop", "time_unit": "MINUTES", "duration": minutes}
