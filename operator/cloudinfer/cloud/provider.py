"""The provider protocol every cloud implements, and the account a call acts for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cloudinfer.cloud.credentials import Credentials
from cloudinfer.cloud.model import ApplyResult, Capabilities, Change, Cloud, ObservedService

Progress = Callable[[ObservedService], None]
"""Called with each service a list reads, before the list returns."""


@dataclass(frozen=True, slots=True)
class Account:
    """One cloud account the operator acts for, with its credentials (never global).

    `name` is the stable key of the account's rate budgets and log lines, e.g. the CloudAccount's
    `namespace/name`. Its repr shows no secret: the credentials redact themselves.
    """

    name: str
    cloud: Cloud
    region: str
    credentials: Credentials
    endpoint: str | None = None
    """Base URL override (a simulator, a private endpoint); None for the cloud's public host."""


@runtime_checkable
class CloudProvider(Protocol):
    """Batched observation and minimal changes for one cloud.

    A provider is built with an `httpx.AsyncClient` (see `http_client.new_async_client`) and the
    cloud's `RateBudgets`; it never builds a client itself. Every call takes its tokens from the
    account's budget and raises only `CloudError` subclasses.
    """

    @property
    def cloud(self) -> Cloud: ...

    def capabilities(self, account: Account) -> Capabilities:
        """What this cloud (and, after fallbacks were learned, this account) can manage."""
        ...

    async def list_services(
        self, account: Account, progress: Progress | None = None
    ) -> list[ObservedService]:
        """Every service of the account, with as few (paged) list calls as the cloud allows.
        A provider that reads services one by one (ModelArts' details) passes each to
        `progress` as soon as it is read, so the first observation can be acted on early."""
        ...

    async def observe(self, account: Account, service_id: str) -> ObservedService:
        """One service; used only when the batch lacks a field."""
        ...

    async def apply(
        self, account: Account, change: Change, *, observed: ObservedService
    ) -> ApplyResult:
        """Make `change` with the smallest call, against the state it was planned from."""
        ...
