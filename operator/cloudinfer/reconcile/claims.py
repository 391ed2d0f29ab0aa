"""Claims: which InferenceService may write to a cloud service that several of them name.

Two InferenceServices naming one cloud service would each correct the other's writes
forever. So, within one operator process, every cloud service has exactly one owner: of all
the InferenceServices that name it through the same cloud account, the oldest by
`metadata.creationTimestamp`, ties broken by namespace, then name. The rule depends only on
what the apiserver stores, so it does not depend on the order events arrive in and survives
restarts. The others make no cloud call and report `ServiceClaimed`.

"The same cloud account" is the cloud identity of a CloudAccount's last successful
observation: cloud, endpoint, region, access key id (and project on ModelArts). Two
CloudAccounts, in one namespace or two, that use the same key against the same region share
claims; two different keys of one cloud account do not (the operator
cannot tell that they are the same account). A CloudAccount that never observed successfully
claims nothing, so a key id without its secret cannot block anyone.

Pure apart from the registry's wakers (asyncio events, no I/O). docs/security.md states the
rule and its limits.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cloudinfer.cloud.credentials import BaiduCredentials, HuaweiCredentials, TencentCredentials
from cloudinfer.cloud.provider import Account

Key = tuple[str, str]  # (namespace, name)
Identity = tuple[str, ...]
"""Which cloud account and region a CloudAccount reaches; holds a key id, never a secret."""
# A claimant with no (or an unparseable) creation time ranks after every dated one.
_UNDATED = datetime.datetime.max.replace(tzinfo=datetime.UTC)


class Unknown(Enum):
    PENDING = "pending"
    """The CloudAccount's first observation has not finished: its identity is not known yet."""


IdentityLookup = Callable[[Key], Identity | Unknown | None]
"""CloudAccount (namespace, name) -> its identity; PENDING while unknown; None when it cannot
claim anything (missing, or it never observed successfully)."""


@dataclass(frozen=True)
class Claimant:
    """One InferenceService naming a cloud service, as far as ownership is concerned."""

    namespace: str
    name: str
    created: datetime.datetime | None
    account: str
    """The CloudAccount it names (always in its own namespace)."""
    service_id: str

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def account_key(self) -> Key:
        return (self.namespace, self.account)

    def rank(self) -> tuple[datetime.datetime, str, str]:
        """Lower ranks first: the owner is the claimant with the lowest rank."""
        return (self.created or _UNDATED, self.namespace, self.name)

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def claimant_from(body: Mapping[str, Any]) -> Claimant | None:
    """The claim an InferenceService makes; None without a serviceId or accountRef."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    service_id = spec.get("serviceId")
    account = (spec.get("accountRef") or {}).get("name")
    if not isinstance(service_id, str) or not service_id or not isinstance(account, str):
        return None
    return Claimant(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        created=_parse_time(meta.get("creationTimestamp")),
        account=account,
        service_id=service_id,
    )


def is_deleting(body: Mapping[str, Any]) -> bool:
    """An object being deleted gives up its claims at once (its reconcile task is stopping)."""
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def owner_of(claimants: Iterable[Claimant]) -> Claimant | None:
    """The ownership rule: the oldest claimant, ties broken by namespace, then name."""
    return min(claimants, key=Claimant.rank, default=None)


def cloud_identity(account: Account) -> Identity:
    """What makes two CloudAccounts reach the same cloud services."""
    creds = account.credentials
    if isinstance(creds, TencentCredentials):
        key_id, project = creds.secret_id, ""
    elif isinstance(creds, HuaweiCredentials):
        key_id, project = creds.ak, creds.project_id
    else:
        assert isinstance(creds, BaiduCredentials)
        key_id, project = creds.ak, ""
    endpoint = (account.endpoint or "").rstrip("/")
    return (account.cloud.value, endpoint, account.region, key_id, project)


@dataclass(frozen=True)
class Verdict:
    owner: Claimant
    """Who may write (possibly the one asking)."""
    rivals: tuple[Claimant, ...]
    """The other claimants of the same cloud service."""
    waiting_for: int = 0
    """Older claimants through CloudAccounts whose identity is not known yet: the asker must
    not write until they are, or a younger claimant could write first after a restart."""


def decide(me: Claimant, claimants: Iterable[Claimant], identity_of: IdentityLookup) -> Verdict:
    """Who owns the cloud service `me` names, among `claimants` (which may include `me`)."""
    mine = identity_of(me.account_key)
    rivals: list[Claimant] = []
    waiting = 0
    for other in claimants:
        if other.key == me.key or other.service_id != me.service_id:
            continue
        if other.account_key == me.account_key:
            rivals.append(other)
            continue
        theirs = identity_of(other.account_key)
        if theirs is Unknown.PENDING and other.rank() < me.rank():
            waiting += 1
        elif isinstance(theirs, tuple) and theirs == mine:
            rivals.append(other)
    owner = owner_of([me, *rivals])
    assert owner is not None
    return Verdict(owner, tuple(sorted(rivals, key=Claimant.rank)), waiting)


class ClaimRegistry:
    """Every InferenceService the process knows, by the cloud service it names.

    Fed by the start-up listing (every object, before any reconciler runs; main/inventory.py),
    the watch events and each reconcile.
    A change wakes the other claimants of the affected service ids, so a successor takes
    over as soon as the owner is deleted or names another service.
    """

    def __init__(self) -> None:
        self._claims: dict[Key, Claimant] = {}
        self._by_service: dict[str, set[Key]] = {}
        self._wakers: dict[Key, set[asyncio.Event]] = {}

    def put(self, claimant: Claimant) -> None:
        old = self._claims.get(claimant.key)
        if old == claimant:
            return
        if old is not None:
            self._unindex(old)
        self._claims[claimant.key] = claimant
        self._by_service.setdefault(claimant.service_id, set()).add(claimant.key)
        affected = {claimant.service_id} | ({old.service_id} if old is not None else set())
        self._wake(affected, but=claimant.key)

    def update(self, body: Mapping[str, Any]) -> None:
        """Record an InferenceService as it is now (or forget it while it is deleted)."""
        claimant = claimant_from(body)
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if claimant is None or is_deleting(body):
            self.drop(key)
        else:
            self.put(claimant)

    def drop(self, key: Key) -> None:
        old = self._claims.pop(key, None)
        if old is not None:
            self._unindex(old)
            self._wake({old.service_id}, but=key)

    def claimants(self, service_id: str) -> list[Claimant]:
        return [self._claims[key] for key in self._by_service.get(service_id, ())]

    def decide(self, me: Claimant, identity_of: IdentityLookup) -> Verdict:
        return decide(me, self.claimants(me.service_id), identity_of)

    def watch(self, key: Key, waker: asyncio.Event) -> None:
        self._wakers.setdefault(key, set()).add(waker)

    def unwatch(self, key: Key, waker: asyncio.Event) -> None:
        wakers = self._wakers.get(key)
        if wakers is not None:
            wakers.discard(waker)
            if not wakers:
                del self._wakers[key]

    def wake_contested(self) -> None:
        """A CloudAccount's identity changed: re-decide every service named more than once."""
        contested = {sid for sid, keys in self._by_service.items() if len(keys) > 1}
        self._wake(contested, but=None)

    def _unindex(self, claimant: Claimant) -> None:
        keys = self._by_service.get(claimant.service_id)
        if keys is not None:
            keys.discard(claimant.key)
            if not keys:
                del self._by_service[claimant.service_id]

    def _wake(self, service_ids: set[str], but: Key | None) -> None:
        for service_id in service_ids:
            for key in self._by_service.get(service_id, ()):
                if key != but:
                    for waker in self._wakers.get(key, ()):
                        waker.set()
