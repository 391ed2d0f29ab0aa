"""Sharding mode: active replicas split the CloudAccounts between them through Leases.

Each replica renews a membership Lease; the live members are the membership Leases seen
renewed within their duration. The accounts are assigned by rendezvous scores with bounded
loads (`assign`), so each member serves an even share and a member joining or leaving moves
few accounts besides its own. The owner
takes the account's Lease before it observes or writes anything for it, and the write
executor checks this replica's fence (`write_window`) immediately before every cloud call.
docs/architecture.md, "Sharding", gives the timing argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from cloudinfer.main.apiserver import SERVICE_ACCOUNT_DIR
from cloudinfer.main.kube import KubeApiError
from cloudinfer.main.leases import LeaseClient, LeaseConflict, LeaseRecord, lease_body
from cloudinfer.main.settings import pod_name
from cloudinfer.reconcile.metrics import Metrics

logger = logging.getLogger("cloudinfer")

Key = tuple[str, str]  # (namespace, name) of a CloudAccount

LEASE_SECONDS: Final = 15
"""How long a Lease not renewed stays another replica's (client-go's default)."""
RENEW_DEADLINE_SECONDS: Final = 10.0
"""A replica sends no cloud write later than this after its last successful renewal began."""
ANSWER_MARGIN_SECONDS: Final = 4.0
"""A write sent before the deadline is cancelled if unanswered this long after it, still
1 s before anyone else could take the Lease."""
RETRY_SECONDS: Final = 2.0
"""Between rounds: renewals, the membership list, acquisitions and releases."""
RELEASE_WAIT_SECONDS: Final = 0.1
JOIN_SECONDS: Final = 3.0
"""A new replica takes no account until its membership has been announced this long, so
that replicas started together see each other first: otherwise the first one up took
accounts meant for the others and handed them over seconds later, having listed their
services and started their reconcilers for nothing (7 handovers in the first 5 s of the
4-replica bench)."""

GROUP_LABEL: Final = "cloudinfer.dev/shard-group"
ROLE_LABEL: Final = "cloudinfer.dev/shard-role"
ACCOUNT_ANNOTATION: Final = "cloudinfer.dev/account"
REPLICA_ANNOTATION: Final = "cloudinfer.dev/replica"
NAME_HASH_CHARS: Final = 20


def default_identity() -> str:
    """The pod name and the process ID: two processes in one pod differ."""
    return f"{pod_name()}-{os.getpid()}"


def lease_namespace(configured: str, directory: Path = SERVICE_ACCOUNT_DIR) -> str:
    """The namespace of the Leases: the setting, else the pod's own namespace."""
    if configured:
        return configured
    with contextlib.suppress(OSError):
        return (directory / "namespace").read_text().strip() or "default"
    return "default"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def account_lease_name(group: str, key: Key) -> str:
    """63 characters at most whatever the account's names: they are in an annotation."""
    return f"cloudinfer-account-{_digest(f'{group}/{key[0]}/{key[1]}')[:NAME_HASH_CHARS]}"


def member_lease_name(group: str, identity: str) -> str:
    return f"cloudinfer-member-{_digest(f'{group}/{identity}')[:NAME_HASH_CHARS]}"


def score(member: str, key: Key) -> int:
    return int.from_bytes(hashlib.sha256(f"{member}\0{key[0]}/{key[1]}".encode()).digest()[:8])


def owner(key: Key, members: Iterable[str]) -> str | None:
    """Rendezvous (highest random weight) hashing: the member with the highest score. Used
    for an account no replica knows (a deletion naming a missing CloudAccount)."""
    return max(members, key=lambda m: (score(m, key), m), default=None)


def assign(keys: Iterable[Key], members: Iterable[str]) -> dict[Key, str]:
    """Each account to one member: rendezvous preference with bounded loads, so that every
    member serves floor(n/m) or ceil(n/m) of the n accounts (plain rendezvous hashing gave
    0, 5, 1 and 2 of 8 accounts to 4 replicas). Pairs are taken best score first: a member
    fills up to floor(n/m), then the remainder goes one more to each of the best-placed.
    Every replica computes the same result from the same accounts and members."""
    accounts, names = sorted(set(keys)), sorted(set(members))
    if not names:
        return {}
    pairs = sorted(
        ((score(m, k), m, k) for k in accounts for m in names), key=lambda p: (-p[0], p[1], p[2])
    )
    base = len(accounts) // len(names)
    load = dict.fromkeys(names, 0)
    out: dict[Key, str] = {}
    for cap in (base, base + 1):
        for _, member, key in pairs:
            if key not in out and load[member] < cap:
                out[key] = member
                load[member] += 1
    return out


@dataclass
class _Held:
    record: LeaseRecord
    renewed_at: float
    """The clock (time.monotonic) when the last successful renewal (or acquisition) was sent."""

    @property
    def valid_until(self) -> float:
        return self.renewed_at + RENEW_DEADLINE_SECONDS


class Sharder:
    """This replica's membership, the accounts it holds, and the fence its writes check."""

    def __init__(
        self,
        leases: LeaseClient,
        metrics: Metrics,
        *,
        group: str,
        identity: str,
        busy: Callable[[Key], bool] = lambda _: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self._clock = clock
        self._leases = leases
        self._metrics = metrics
        self._group = _digest(group)[:16]  # a valid label value whatever the peering name
        self._group_name = group
        self.busy = busy
        """Whether a write for the account is in flight (the write executor's)."""
        self._wanted: set[Key] = set()
        self._held: dict[Key, _Held] = {}
        self._events: dict[Key, asyncio.Event] = {}
        self._seen: dict[str, tuple[str, float]] = {}
        """Lease name -> (its resourceVersion, the clock when first seen at it)."""
        self._member_record: LeaseRecord | None = None
        self._announced_at: float | None = None
        self.members: tuple[str, ...] = (identity,)
        self.on_change: Callable[[Key, bool], None] = lambda _key, _held: None
        self._task: asyncio.Task[None] | None = None
        self._handing: set[asyncio.Task[None]] = set()
        self._lapsed: dict[Key, str] = {}
        """Accounts whose fence lapsed -> the Lease's resourceVersion then: unchanged since,
        no one else took it, so this replica takes it back without waiting for the expiry."""

    # -- what the handlers ask ------------------------------------------------------------------

    def want(self, key: Key, exists: bool) -> None:
        """A CloudAccount exists (also while being deleted), or is gone."""
        if exists:
            self._wanted.add(key)
        else:
            self._wanted.discard(key)

    def holds(self, key: Key) -> bool:
        return self.write_window(key) is not None

    def may_act(self, key: Key) -> bool:
        """This replica acts for the account: it holds it, or there is no such CloudAccount
        and the hash gives it to this replica (a deletion naming a missing account)."""
        if key in self._wanted:
            return self.holds(key)
        return owner(key, self.members) == self.identity

    def held_event(self, key: Key) -> asyncio.Event:
        """Set while this replica holds the account."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
            if key in self._held:
                event.set()
        return event

    def write_window(self, key: Key) -> tuple[float, float] | None:
        """(send before, answered by) as time.monotonic() instants while this replica holds
        the account; None otherwise. Implements the executor's WriteFence."""
        held = self._held.get(key)
        if held is None or self._clock() >= held.valid_until:
            return None
        return held.valid_until, held.valid_until + ANSWER_MARGIN_SECONDS

    @property
    def held(self) -> frozenset[Key]:
        return frozenset(self._held)

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sharding")

    async def close(self) -> None:
        """Stop, and hand every account back at once (no wait for the Leases to expire)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for key in list(self._held):
            held = self._lost(key, "this replica is stopping")
            if held is not None:
                with contextlib.suppress(Exception):
                    await self._hand_back(key, held)
        for task in list(self._handing):
            with contextlib.suppress(Exception):
                await task
        if self._member_record is not None:
            with contextlib.suppress(Exception):
                record = self._member_record
                await self._leases.delete(record.name, record.resource_version)

    async def _run(self) -> None:
        logger.info(
            "sharding as %s (group %s, Leases in namespace %s)",
            self.identity, self._group_name, self._leases.namespace,
        )  # fmt: skip
        while True:
            try:
                await self.step()
            except Exception as err:  # the apiserver is away, or a bug: the fence lapses
                logger.warning("sharding round failed: %s", err)
            self._expire_lapsed()
            await asyncio.sleep(RETRY_SECONDS)

    async def step(self) -> None:
        """One round: renew membership, list, then acquire, renew or release each account."""
        await self._renew_membership()
        records = await self._leases.list(f"{GROUP_LABEL}={self._group}")
        now = self._clock()
        self._note(records, now)
        by_name = {r.name: r for r in records}
        members = {self.identity}
        for record in records:
            if record.labels.get(ROLE_LABEL) != "member" or record.name == self._member_name:
                continue
            if self._expired(record, now):
                await self._leases.delete(record.name, record.resource_version)
            elif record.holder:
                members.add(record.holder)
        self.members = tuple(sorted(members))
        self._metrics.shard_members.set(len(members))
        if self._announced_at is None:
            self._announced_at = now
        if now - self._announced_at < JOIN_SECONDS:
            return  # joining: let the replicas started with this one announce themselves
        assignment = assign(self._wanted, members)

        async def settle(key: Key) -> None:
            lease = by_name.get(account_lease_name(self._group_name, key))
            try:
                if assignment.get(key) == self.identity:
                    await self._acquire(key, lease, now)
                elif key in self._held:
                    await self._release(key)
            except (LeaseConflict, KubeApiError, aiohttp.ClientError, TimeoutError) as err:
                logger.info("Lease of CloudAccount %s/%s: %s", *key, err)

        # All at once: one after the other, a round of 20 accounts on a busy event loop took
        # 20 loop-bound round trips, and the last renewals came after the renew deadline.
        await asyncio.gather(*(settle(key) for key in sorted(self._wanted | set(self._held))))

    @property
    def _member_name(self) -> str:
        return member_lease_name(self._group_name, self.identity)

    def _labels(self, role: str) -> dict[str, str]:
        return {GROUP_LABEL: self._group, ROLE_LABEL: role}

    async def _renew_membership(self) -> None:
        current = self._member_record
        body = lease_body(
            self._member_name, holder=self.identity, duration=LEASE_SECONDS, transitions=0,
            labels=self._labels("member"), annotations={REPLICA_ANNOTATION: self.identity},
            resource_version=current.resource_version if current is not None else None,
        )  # fmt: skip
        try:
            if current is None:
                self._member_record = await self._leases.create(body)
            else:
                self._member_record = await self._leases.replace(body)
        except LeaseConflict:
            # Left by an earlier process with this identity, or changed by hand: read again.
            for record in await self._leases.list(f"{GROUP_LABEL}={self._group}"):
                if record.name == self._member_name:
                    self._member_record = record
                    body["metadata"]["resourceVersion"] = record.resource_version
                    self._member_record = await self._leases.replace(body)

    def _note(self, records: Iterable[LeaseRecord], now: float) -> None:
        seen: dict[str, tuple[str, float]] = {}
        for record in records:
            last = self._seen.get(record.name)
            if last is not None and last[0] == record.resource_version:
                seen[record.name] = last
            else:
                seen[record.name] = (record.resource_version, now)
        self._seen = seen

    def _expired(self, record: LeaseRecord, now: float) -> bool:
        """Not renewed for its duration, as measured on this replica's monotonic clock since
        this replica first saw it at its current version (clocks of replicas never meet)."""
        first_seen = self._seen.get(record.name, (record.resource_version, now))[1]
        return now - first_seen > (record.duration or LEASE_SECONDS)

    async def _acquire(self, key: Key, record: LeaseRecord | None, now: float) -> None:
        name = account_lease_name(self._group_name, key)
        held = self._held.get(key)
        if held is not None and (
            record is None or record.resource_version != held.record.resource_version
        ):
            # Deleted or written by someone else since this replica's renewal: stop now,
            # not when the fence would lapse.
            self._lost(key, "its Lease changed under this replica")
        if record is None:
            body = self._account_body(name, key, transitions=0, resource_version=None)
            sent = self._clock()
            self._gained(key, await self._leases.create(body), sent)
            return
        held = self._held.get(key)
        # A Lease naming this identity that this process does not hold (an earlier process
        # in the same pod, or changed under it) is waited for like anyone else's.
        mine = held is not None or (
            record.holder == self.identity and self._lapsed.get(key) == record.resource_version
        )
        if not mine and record.holder and not self._expired(record, now):
            return  # still another replica's: it releases it, or it expires
        version = held.record.resource_version if held is not None else record.resource_version
        transitions = record.transitions + (0 if mine else 1)
        body = self._account_body(name, key, transitions=transitions, resource_version=version)
        sent = self._clock()
        try:
            renewed = await self._leases.replace(body)
        except LeaseConflict:
            if held is not None:
                self._lost(key, "its Lease changed under this replica")
            raise
        if held is not None:
            held.record, held.renewed_at = renewed, sent
        else:
            self._gained(key, renewed, sent)

    def _account_body(
        self, name: str, key: Key, *, transitions: int, resource_version: str | None
    ) -> dict[str, object]:
        return lease_body(
            name, holder=self.identity, duration=LEASE_SECONDS, transitions=transitions,
            labels=self._labels("account"),
            annotations={
                ACCOUNT_ANNOTATION: f"{key[0]}/{key[1]}", REPLICA_ANNOTATION: self.identity,
            },
            resource_version=resource_version, acquired=key not in self._held,
        )  # fmt: skip

    def _gained(self, key: Key, record: LeaseRecord, sent: float) -> None:
        self._held[key] = _Held(record, sent)
        self._lapsed.pop(key, None)
        self._metrics.shard_accounts_held.set(len(self._held))
        self._metrics.shard_handovers.labels("gained").inc()
        logger.info("holding CloudAccount %s/%s", *key, extra={"resource": "/".join(key)})
        self.held_event(key).set()
        self.on_change(key, True)

    def _lost(self, key: Key, why: str) -> _Held | None:
        held = self._held.pop(key, None)
        if held is None:
            return None
        self._metrics.shard_accounts_held.set(len(self._held))
        self._metrics.shard_handovers.labels("lost").inc()
        logger.info(
            "no longer holding CloudAccount %s/%s: %s", *key, why, extra={"resource": "/".join(key)}
        )
        self.held_event(key).clear()
        self.on_change(key, False)
        return held

    def _expire_lapsed(self) -> None:
        now = self._clock()
        for key, held in list(self._held.items()):
            if now >= held.valid_until:
                self._lost(key, "its Lease was not renewed in time")
                self._lapsed[key] = held.record.resource_version

    async def _release(self, key: Key) -> None:
        """Stop writing for the account at once, let writes in flight finish (they are
        cancelled at the fence's answer deadline anyway), then hand the Lease back. The wait
        runs on its own, so that it never delays the renewal of the other accounts."""
        held = self._lost(key, "another replica owns it now")
        if held is None:
            return
        if not self.busy(key):
            await self._hand_back(key, held)
            return
        task = asyncio.get_running_loop().create_task(self._hand_back(key, held))
        self._handing.add(task)
        task.add_done_callback(self._handing.discard)

    async def _hand_back(self, key: Key, held: _Held) -> None:
        deadline = held.valid_until + ANSWER_MARGIN_SECONDS
        while self.busy(key) and self._clock() < deadline:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(RELEASE_WAIT_SECONDS)
        if self._clock() >= deadline:
            return  # let it expire by itself
        record = held.record
        if key not in self._wanted:
            await self._leases.delete(record.name, record.resource_version)
            return
        body = lease_body(
            record.name, holder="", duration=LEASE_SECONDS, transitions=record.transitions,
            labels=self._labels("account"), annotations=dict(record.annotations),
            resource_version=record.resource_version,
        )  # fmt: skip
        with contextlib.suppress(LeaseConflict, KubeApiError, aiohttp.ClientError, TimeoutError):
            await self._leases.replace(body)
