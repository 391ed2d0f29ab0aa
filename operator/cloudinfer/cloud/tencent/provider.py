"""The TI-ONE provider: batched observation and minimal changes
(issue 6, docs/clouds/tencent-tione.md).

- List: `DescribeModelServiceGroups` in pages of 100 (its maximum); each group carries its
  full `Services[]`, so one page observes up to 100 groups.
- RPS limit and schedule: `ModifyModelServicePartialConfig` (incremental, no restart), both in
  one call when both differ (a `Combined` change). If the
  account answers `InvalidAction`/`ActionOffline`, fall back to `ModifyModelService` with only
  those fields and remember that per account.
- Replicas, stop, resume: `ModifyModelService` with `ServiceAction` SCALE/STOP/RESUME.
- Platform stops (`ARREARS_STOP`, `WHITELIST_STOP`) are never fought: resume is refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import Any, Final, TypeVar

import httpx
from pydantic import ValidationError

from cloudinfer.cloud.budget import RateBudgets
from cloudinfer.cloud.clock import Clock, SystemClock, WallClock
from cloudinfer.cloud.credentials import TencentCredentials
from cloudinfer.cloud.errors import (
    CloudError,
    ConflictError,
    InvalidRequestError,
    MalformedResponseError,
    UnsupportedActionError,
)
from cloudinfer.cloud.exchange import Reply, send
from cloudinfer.cloud.gcpause import collector_paused
from cloudinfer.cloud.listcache import Listing, ParsedItems
from cloudinfer.cloud.model import (
    ApplyResult,
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    Combined,
    FieldChange,
    ObservedService,
    RateLimitScope,
    Resume,
    Scale,
    SetRateLimit,
    SetSchedule,
    Stop,
)
from cloudinfer.cloud.payload import Payload
from cloudinfer.cloud.provider import Account, Progress
from cloudinfer.cloud.retry import RetryPolicy, call_with_budget
from cloudinfer.cloud.tencent import limits
from cloudinfer.cloud.tencent.envelope import CLOUD, body_key, unwrap
from cloudinfer.cloud.tencent.parse import CAPABILITIES, FALLBACK_CAPABILITIES, observed_service
from cloudinfer.cloud.tencent.signer import TencentSigner

T = TypeVar("T")

API_VERSION: Final = "2021-11-11"
PUBLIC_ENDPOINT: Final = "https://tione.tencentcloudapi.com"
"""The nearest-region endpoint (docs/clouds/tencent-tione.md#endpoint)."""
LIST_PAGE_SIZE: Final = 100
"""`DescribeModelServiceGroups` Limit maximum (docs/clouds/tencent-tione.md#reading-services)."""
SCHEDULE_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
"""Seed responses use UTC with `Z`; the API compares instants, not strings
(docs/clouds/tencent-tione.md#seeds-and-sdks-disagree)."""


def new_tencent_budgets(clock: Clock) -> RateBudgets:
    return RateBudgets(
        limits.TENCENT_RATE_LIMITS, default=limits.TENCENT_DEFAULT_RATE_LIMIT, clock=clock
    )


class TencentProvider:
    """`CloudProvider` for TI-ONE. One instance serves many accounts; budgets are per account."""

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
        self._budgets = budgets or new_tencent_budgets(self._clock)
        self._retry = retry or RetryPolicy()
        self._partial_config: dict[str, bool] = {}
        """Per account: False once PartialConfig answered InvalidAction/ActionOffline."""
        self._parsed: ParsedItems[ObservedService] = ParsedItems()
        self._pages: dict[str, dict[int, _KnownPage]] = {}
        """Per account, the pages of its last complete list that read cleanly, by offset."""

    @property
    def cloud(self) -> Cloud:
        return Cloud.TENCENT

    def capabilities(self, account: Account) -> Capabilities:
        if self._partial_config.get(account.name, True):
            return CAPABILITIES
        return FALLBACK_CAPABILITIES

    # ----- observation -----------------------------------------------------------------------

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        """Each page's services go to `progress` as the page arrives (a page of 100 every
        50 ms at the 20/s list limit: at N = 1,000 the first writes start 0.45 s sooner).
        A page whose body is unchanged since the last list but for its request id is not
        decoded again; a service whose item is unchanged is not parsed again."""
        services: list[ObservedService] = []
        offset = 0
        capabilities = self.capabilities(account)
        listing = self._parsed.listing(account.name, capabilities)
        known = self._pages.get(account.name, {})
        kept: dict[int, _KnownPage] = {}
        seen_groups: set[str] = set()
        while True:
            page = await self._exchange(
                account,
                limits.DESCRIBE_MODEL_SERVICE_GROUPS,
                {"Offset": offset, "Limit": LIST_PAGE_SIZE},
                partial(
                    _read_page,
                    offset=offset,
                    seen=seen_groups,
                    listing=listing,
                    capabilities=capabilities,
                    known=known.get(offset),
                    kept=kept,
                ),
            )
            services.extend(page.services)
            if progress is not None:
                for observed in page.services:
                    progress(observed)
            if page.error is not None:
                raise page.error
            seen_groups |= page.group_ids
            offset += LIST_PAGE_SIZE
            if page.last:
                listing.done()
                self._pages[account.name] = kept
                return services

    async def observe(self, account: Account, service_id: str) -> ObservedService:
        reply = await self._call(account, limits.DESCRIBE_MODEL_SERVICE, {"ServiceId": service_id})
        service = self._payload(reply, limits.DESCRIBE_MODEL_SERVICE).object("Service")
        return observed_service(service, capabilities=self.capabilities(account))

    # ----- changes -----------------------------------------------------------------------------

    async def apply(
        self, account: Account, change: Change, *, observed: ObservedService
    ) -> ApplyResult:
        sid = change.service_id
        if isinstance(change, Resume) and observed.platform_stop:
            raise ConflictError(
                f"the platform stopped {sid} ({observed.platform_stop}); not resuming it",
                cloud=CLOUD,
                action=limits.MODIFY_MODEL_SERVICE,
                code=observed.platform_stop,
            )
        if isinstance(change, Scale):
            return await self._action(
                account, change, {"ServiceAction": "SCALE", "Replicas": change.replicas}
            )
        if isinstance(change, Stop):
            return await self._action(account, change, {"ServiceAction": "STOP"})
        if isinstance(change, Resume):
            return await self._action(account, change, {"ServiceAction": "RESUME"})
        if isinstance(change, Combined):
            fields: dict[str, Any] = {}
            for part in change.parts:
                fields.update(_partial_fields(part))
            return await self._partial(account, change, fields)
        return await self._partial(account, change, _partial_fields(change))

    async def _action(
        self, account: Account, change: Change, fields: dict[str, Any]
    ) -> ApplyResult:
        action = limits.MODIFY_MODEL_SERVICE
        reply = await self._call(
            account, action, {"ServiceId": change.service_id, **fields}, write=True
        )
        return ApplyResult(change=change, call=action, request_id=reply.request_id)

    async def _partial(
        self, account: Account, change: Change, fields: dict[str, Any]
    ) -> ApplyResult:
        body = {"ServiceId": change.service_id, **fields}
        if self._partial_config.get(account.name, True):
            try:
                reply = await self._call(
                    account, limits.MODIFY_MODEL_SERVICE_PARTIAL_CONFIG, body, write=True
                )
            except UnsupportedActionError:
                self._partial_config[account.name] = False
            else:
                return ApplyResult(
                    change=change,
                    call=limits.MODIFY_MODEL_SERVICE_PARTIAL_CONFIG,
                    request_id=reply.request_id,
                )
        reply = await self._call(account, limits.MODIFY_MODEL_SERVICE, body, write=True)
        return ApplyResult(
            change=change,
            call=limits.MODIFY_MODEL_SERVICE,
            request_id=reply.request_id,
            note=(
                "ModifyModelServicePartialConfig is unavailable for this account; sent "
                f"ModifyModelService with only {', '.join(fields)} (may roll the service)"
            ),
        )

    # ----- plumbing --------------------------------------------------------------------------

    async def _call(
        self, account: Account, action: str, params: dict[str, Any], *, write: bool = False
    ) -> Reply:
        return await self._exchange(
            account, action, params, partial(unwrap, action=action), write=write
        )

    async def _exchange(
        self,
        account: Account,
        action: str,
        params: dict[str, Any],
        read: Callable[[httpx.Response], T],
        *,
        write: bool = False,
    ) -> T:
        """Send `action` within the account's budget, retrying as the error says (a `write`
        not once it may have been carried out); `read` turns the response into the result
        (raising the call's error, if any)."""
        credentials = account.credentials
        if not isinstance(credentials, TencentCredentials):
            raise InvalidRequestError(
                f"account {account.name} has no Tencent credentials", cloud=CLOUD, action=action
            )
        signer = TencentSigner(credentials, clock=self._wall_clock)
        url = (account.endpoint or PUBLIC_ENDPOINT).rstrip("/") + "/"
        # json.dumps defaults, as the SDK sends them; the signature hashes these exact bytes.
        body = json.dumps(params).encode()

        async def attempt() -> T:
            request = self._client.build_request(
                "POST",
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-TC-Action": action,
                    "X-TC-Version": API_VERSION,
                    "X-TC-Region": account.region,
                },
            )
            response = await send(self._client, request, auth=signer, cloud=CLOUD, action=action)
            return read(response)

        bucket = self._budgets.bucket(account.name, action)
        return await call_with_budget(
            attempt, bucket=bucket, clock=self._clock, policy=self._retry,
            resend_unanswered=not write,
        )  # fmt: skip

    @staticmethod
    def _payload(reply: Reply, action: str) -> Payload:
        return Payload(reply.data, CLOUD, action, reply.request_id)


@dataclass(frozen=True, slots=True)
class _Page:
    """One list page, read: its services, or the error it must end the list with. The error
    is returned, not raised, so that a page that does not parse is not sent again (only
    errors of the call itself are retried); `services` were read before it."""

    services: list[ObservedService]
    group_ids: set[str]
    last: bool
    error: CloudError | ValidationError | None = None


@dataclass(frozen=True, slots=True)
class _KnownPage:
    """What a page that read cleanly held, by its body's key (`envelope.body_key`)."""

    key: bytes
    capabilities: Capabilities
    ids: frozenset[str | None]
    total: int | None
    """TotalCount, read when the page had groups."""
    items: tuple[tuple[bytes | None, ObservedService], ...]
    last: bool


def _read_page(
    response: httpx.Response,
    *,
    offset: int,
    seen: set[str],
    listing: Listing[ObservedService],
    capabilities: Capabilities,
    known: _KnownPage | None,
    kept: dict[int, _KnownPage],
) -> _Page:
    key = body_key(response) if response.is_success else None
    if (
        key is not None
        and known is not None
        and (known.key, known.capabilities)
        == (
            key[0],
            capabilities,
        )
    ):
        kept[offset] = known
        return _known_page(known, offset=offset, seen=seen, listing=listing, request_id=key[1])
    # The decoded page dies inside the pause (cloud/gcpause.py: why).
    with collector_paused():
        reply = unwrap(response, action=limits.DESCRIBE_MODEL_SERVICE_GROUPS)
        page, content = _parse_page(
            reply, offset=offset, seen=seen, listing=listing, capabilities=capabilities
        )
        del reply
    if key is not None and content is not None:
        kept[offset] = _KnownPage(key[0], capabilities, *content, last=page.last)
    return page


def _known_page(
    known: _KnownPage,
    *,
    offset: int,
    seen: set[str],
    listing: Listing[ObservedService],
    request_id: str,
) -> _Page:
    """A page read as `_parse_page` read it last time; only the repeat check depends on the
    pages before it."""
    if known.ids and None not in known.ids and known.ids <= seen:
        return _Page([], set(), True, _repeated(offset, known.total, request_id))
    listing.carry(known.items)
    services = [observed for _, observed in known.items]
    return _Page(services, {i for i in known.ids if i is not None}, known.last)


def _repeated(offset: int, total: int | None, request_id: str | None) -> MalformedResponseError:
    # A page that only repeats earlier groups would page on to TotalCount forever.
    return MalformedResponseError(
        f"the page at Offset {offset} repeats groups already listed (TotalCount {total})",
        cloud=CLOUD,
        action=limits.DESCRIBE_MODEL_SERVICE_GROUPS,
        request_id=request_id,
    )


_Content = tuple[
    frozenset[str | None], int | None, tuple[tuple[bytes | None, ObservedService], ...]
]
"""A clean page's group ids, TotalCount (if it had groups) and keyed services."""


def _parse_page(
    reply: Reply,
    *,
    offset: int,
    seen: set[str],
    listing: Listing[ObservedService],
    capabilities: Capabilities,
) -> tuple[_Page, _Content | None]:
    page = Payload(reply.data, CLOUD, limits.DESCRIBE_MODEL_SERVICE_GROUPS, reply.request_id)
    keyed: list[tuple[bytes | None, ObservedService]] = []
    try:
        groups = page.objects("ServiceGroups", optional=True)
        ids = {g.optional_string("ServiceGroupId") for g in groups}
        if groups and None not in ids and ids <= seen:
            total = page.optional_integer("TotalCount")
            raise _repeated(offset, total, reply.request_id)
        for group in groups:
            for i, item in enumerate(group.object_list("Services", optional=True)):
                parse = partial(_observed, group, i, item, capabilities)
                keyed.append(listing.parse_keyed(item, parse))
    except (CloudError, ValidationError) as error:
        return _Page([], set(), True, error), None
    group_ids = {i for i in ids if i is not None}
    services = [observed for _, observed in keyed]
    try:
        total = page.integer("TotalCount") if groups else None
    except CloudError as error:
        return _Page(services, group_ids, True, error), None
    last = total is None or offset + LIST_PAGE_SIZE >= total
    return _Page(services, group_ids, last), (frozenset(ids), total, tuple(keyed))


def _observed(
    group: Payload, index: int, item: dict[str, Any], capabilities: Capabilities
) -> ObservedService:
    return observed_service(group.element("Services", index, item), capabilities=capabilities)


def _partial_fields(change: FieldChange) -> dict[str, Any]:
    """The PartialConfig fields for a rate-limit or schedule change."""
    if isinstance(change, SetRateLimit):
        if change.scope is not RateLimitScope.PER_INSTANCE:
            raise InvalidRequestError(
                "TI-ONE limits requests per instance; convert the limit to PerInstance first",
                cloud=CLOUD,
            )
        if change.rps != math.floor(change.rps):
            raise InvalidRequestError(
                f"TI-ONE takes whole requests per second, not {change.rps}", cloud=CLOUD
            )
        return {
            "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": int(change.rps)}
        }
    if isinstance(change, ClearRateLimit):
        return {"ServiceLimit": {"EnableInstanceRpsLimit": False}}
    if isinstance(change, SetSchedule):
        when = change.stop_at.astimezone(UTC).strftime(SCHEDULE_TIME_FORMAT)
        return {"ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": when}}
    if isinstance(change, ClearSchedule):
        # "false 则 ScheduleStopTime 不生效": the flag alone disables the stop.
        return {"ScheduledAction": {"ScheduleStop": False}}
    raise InvalidRequestError(f"{change.kind} is not a partial-config change", cloud=CLOUD)
