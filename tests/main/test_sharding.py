"""Sharding's decisions (main/sharding.py): the rendezvous assignment, the Lease names, and the
Lease protocol of several replicas over Leases kept in memory with the apiserver's
optimistic concurrency (a resourceVersion per change, 409 on a stale one), on one clock the
test moves. tests/reliability/test_reliability_sharding.py runs replicas against the real
apiserver and the simulators.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import string
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from cloudinfer.main.leases import LeaseConflict, LeaseRecord
from cloudinfer.main.sharding import (
    JOIN_SECONDS,
    LEASE_SECONDS,
    RENEW_DEADLINE_SECONDS,
    RETRY_SECONDS,
    Key,
    Sharder,
    account_lease_name,
    assign,
    member_lease_name,
    owner,
)
from cloudinfer.reconcile.fence import NotHolder, answer_deadline
from cloudinfer.reconcile.metrics import Metrics

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ACCOUNTS = [(f"tenant-{i % 7}", f"acct-{i}") for i in range(120)]


@pytest.mark.parametrize(("accounts", "members"), [(8, 4), (9, 3), (9, 4), (20, 4), (120, 7)])
def test_each_member_serves_an_even_share_and_a_leaver_moves_few_others(
    accounts: int, members: int
) -> None:
    keys, names = ACCOUNTS[:accounts], [f"pod-{i}-1" for i in range(members)]
    before = assign(keys, names)
    assert assign(reversed(keys), reversed(names)) == before  # the same on every replica
    loads = Counter(before.values())
    assert set(loads) == set(names)
    assert set(loads.values()) <= {accounts // members, -(-accounts // members)}, loads
    after = assign(keys, names[1:])
    assert set(after) == set(keys)
    others = [k for k in keys if before[k] != names[0] and after[k] != before[k]]
    assert len(others) <= loads[names[0]], others  # at most as many as the leaver's own


def test_rendezvous_moves_only_a_leavers_own_accounts() -> None:
    members = ["pod-a-1", "pod-b-1", "pod-c-1", "pod-d-1"]
    before = {key: owner(key, members) for key in ACCOUNTS}
    after = {key: owner(key, members[1:]) for key in ACCOUNTS}
    moved = {key for key in ACCOUNTS if before[key] != after[key]}
    assert moved == {key for key in ACCOUNTS if before[key] == "pod-a-1"}
    joined = {key: owner(key, [*members, "pod-e-1"]) for key in ACCOUNTS}
    assert {joined[k] for k in ACCOUNTS if joined[k] != before[k]} == {"pod-e-1"}


def test_lease_names_fit_whatever_the_account_and_replica_names() -> None:
    longest = ("n" * 63, "a" * 253)
    names = {
        account_lease_name("cloudinfer-operator", longest),
        account_lease_name("cloudinfer-operator", ("n" * 63, "a" * 252 + "b")),
        account_lease_name("other-operator", longest),
        member_lease_name("cloudinfer-operator", "p" * 253),
    }
    assert len(names) == 4
    for name in names:
        assert len(name) <= 63 and DNS_LABEL.match(name), name


class MemoryLeases:
    """Leases of one namespace as the apiserver keeps them, for the protocol's logic."""

    namespace = "ops"

    def __init__(self) -> None:
        self.items: dict[str, LeaseRecord] = {}
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise TimeoutError("the apiserver is away")

    def _store(self, body: Mapping[str, Any]) -> LeaseRecord:
        self.version += 1
        meta, spec = body["metadata"], body["spec"]
        record = LeaseRecord(
            name=meta["name"], resource_version=str(self.version),
            holder=spec["holderIdentity"], duration=float(spec["leaseDurationSeconds"]),
            renewed=spec["renewTime"], transitions=spec["leaseTransitions"],
            labels=dict(meta["labels"]), annotations=dict(meta["annotations"]),
        )  # fmt: skip
        self.items[record.name] = record
        return record

    async def list(self, selector: str) -> list[LeaseRecord]:
        self._check()
        label, _, value = selector.partition("=")
        return [r for r in self.items.values() if r.labels.get(label) == value]

    async def create(self, body: Mapping[str, Any]) -> LeaseRecord:
        self._check()
        if body["metadata"]["name"] in self.items:
            raise LeaseConflict("exists")
        return self._store(body)

    async def replace(self, body: Mapping[str, Any]) -> LeaseRecord:
        self._check()
        current = self.items.get(body["metadata"]["name"])
        if current is None or current.resource_version != body["metadata"]["resourceVersion"]:
            raise LeaseConflict("changed")
        return self._store(body)

    async def delete(self, name: str, resource_version: str) -> None:
        self._check()
        current = self.items.get(name)
        if current is not None and current.resource_version == resource_version:
            del self.items[name]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(leases: MemoryLeases, clock: Clock, name: str) -> Sharder:
    sharder = Sharder(
        leases,  # type: ignore[arg-type]  # the same calls, kept in memory
        Metrics(), group="cloudinfer-operator", identity=name, clock=clock,
    )  # fmt: skip
    for key in KEYS:
        sharder.want(key, True)
    return sharder


KEYS: list[Key] = [("team", f"acct-{c}") for c in string.ascii_lowercase[:9]]


FIRST_HOLD = math.ceil(JOIN_SECONDS / RETRY_SECONDS) + 1
"""Rounds until a new replica takes accounts: it announces itself, then waits JOIN_SECONDS."""


def writers(replicas: list[Sharder], key: Key) -> list[str]:
    return [r.identity for r in replicas if r.write_window(key) is not None]


async def rounds(
    replicas: list[Sharder], clock: Clock, count: int, *, seen: list[Sharder] | None = None
) -> None:
    """`count` rounds of every replica in turn, RETRY_SECONDS apart; after each step no
    account may be writable by two replicas (`seen`: also those no longer stepping)."""
    for _ in range(count):
        for sharder in replicas:
            await sharder.step()
            sharder._expire_lapsed()
            for key in KEYS:
                assert len(writers(seen or replicas, key)) <= 1, (key, writers(replicas, key))
        clock.now += RETRY_SECONDS


def assert_balanced(replicas: list[Sharder]) -> None:
    assignment = assign(KEYS, [r.identity for r in replicas])
    for key in KEYS:
        assert writers(replicas, key) == [assignment[key]], key


def test_replicas_split_accounts_and_a_joiner_takes_its_share_without_overlap() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a = replica(leases, clock, "a")
        await rounds([a], clock, FIRST_HOLD)
        assert all(writers([a], key) == ["a"] for key in KEYS)
        b, c = replica(leases, clock, "b"), replica(leases, clock, "c")
        await rounds([a, b, c], clock, 4)
        assert_balanced([a, b, c])
        assert len({writers([a, b, c], key)[0] for key in KEYS}) == 3

    asyncio.run(scenario())


def test_a_dead_replicas_accounts_move_only_after_its_fence_closed() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a, b = replica(leases, clock, "a"), replica(leases, clock, "b")
        await rounds([a, b], clock, 4)
        assert_balanced([a, b])
        mine = [key for key in KEYS if writers([a], key)]
        assert mine
        # `a` stops renewing (killed, or cut off from the apiserver) but its clock runs on:
        # `b` must not write for a's accounts while a's fence could still let it write.
        await rounds([b], clock, (LEASE_SECONDS + 6) // int(RETRY_SECONDS), seen=[a, b])
        assert_balanced([b])
        assert b.members == ("b",)

    asyncio.run(scenario())


def test_the_fence_closes_before_the_lease_can_expire_when_renewals_fail() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a = replica(leases, clock, "a")
        lost: list[Key] = []
        a.on_change = lambda key, held: None if held else lost.append(key)
        await rounds([a], clock, FIRST_HOLD)
        window = a.write_window(KEYS[0])
        assert window is not None
        send_before, answered_by = window
        assert send_before - clock.now <= RENEW_DEADLINE_SECONDS
        assert answered_by < clock.now - RETRY_SECONDS + LEASE_SECONDS
        leases.down = True
        clock.now += RENEW_DEADLINE_SECONDS
        with pytest.raises(TimeoutError):
            await a.step()
        a._expire_lapsed()
        assert a.held == frozenset()
        assert sorted(lost) == sorted(KEYS)

    asyncio.run(scenario())


def test_a_replica_leaving_cleanly_hands_its_accounts_over_at_once() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a, b = replica(leases, clock, "a"), replica(leases, clock, "b")
        await rounds([a, b], clock, 4)
        await a.close()
        # Released and its membership gone: b takes everything in its next round, long
        # before any Lease could have expired.
        await rounds([b], clock, 1, seen=[a, b])
        assert_balanced([b])

    asyncio.run(scenario())


def test_a_write_is_refused_without_a_window() -> None:
    class Window:
        def __init__(self, window: tuple[float, float] | None) -> None:
            self.window = window

        def write_window(self, account: Key) -> tuple[float, float] | None:
            return self.window

    with pytest.raises(NotHolder):
        answer_deadline(Window(None), ("ns", "acct"))
    with pytest.raises(NotHolder):
        answer_deadline(Window((0.0, 1.0)), ("ns", "acct"))  # the send deadline has passed
    far = 1e12
    assert answer_deadline(Window((far, far + 4)), ("ns", "acct")) == far + 4


def test_a_lease_changed_under_its_holder_stops_it_at_the_next_round() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a = replica(leases, clock, "a")
        await rounds([a], clock, FIRST_HOLD)
        name = account_lease_name("cloudinfer-operator", KEYS[0])
        stolen = leases.items[name]
        leases.items[name] = dataclasses.replace(stolen, holder="z", resource_version="999")
        lost: list[Key] = []
        a.on_change = lambda key, held: None if held else lost.append(key)
        await a.step()
        assert lost == [KEYS[0]]
        assert a.write_window(KEYS[0]) is None  # and "z" is waited for until it expires

    asyncio.run(scenario())


def test_a_new_process_with_the_same_identity_waits_for_the_old_ones_leases() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        await rounds([replica(leases, clock, "pod-1")], clock, FIRST_HOLD)
        again = replica(leases, clock, "pod-1")  # the container restarted: same pod, same PID
        await rounds([again], clock, 3)
        assert again.held == frozenset()  # the old process might still be writing
        await rounds([again], clock, (LEASE_SECONDS + 4) // int(RETRY_SECONDS))
        assert again.held == frozenset(KEYS)

    asyncio.run(scenario())


def test_after_an_outage_a_replica_takes_back_at_once_what_no_one_touched() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a = replica(leases, clock, "a")
        await rounds([a], clock, FIRST_HOLD)
        leases.down = True
        clock.now += RENEW_DEADLINE_SECONDS
        a._expire_lapsed()
        assert a.held == frozenset()
        leases.down = False
        await rounds([a], clock, 1)  # not LEASE_SECONDS later: the Leases still name it
        assert a.held == frozenset(KEYS)

    asyncio.run(scenario())


def test_waiting_for_a_write_in_flight_does_not_hold_up_other_renewals() -> None:
    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        a, b = replica(leases, clock, "a"), replica(leases, clock, "b")
        await rounds([a], clock, 2)
        a.busy = lambda key: True  # a write for every account is in flight, never answered
        b_gets = [k for k, m in assign(KEYS, ["a", "b"]).items() if m == "b"]
        await rounds([b, a], clock, 1)
        kept = a.held
        assert kept == frozenset(KEYS) - set(b_gets)  # handed over ones are closed at once
        before = {k: leases.items[account_lease_name("cloudinfer-operator", k)] for k in kept}
        await rounds([a], clock, 1)  # the round does not wait for the writes in flight
        for key in kept:
            name = account_lease_name("cloudinfer-operator", key)
            assert leases.items[name].resource_version != before[key].resource_version
        # Still unanswered, the handed-over Leases are not released: b takes them once they
        # expire, and never writes while a could (checked after every step).
        await rounds([a, b], clock, int(LEASE_SECONDS // RETRY_SECONDS) + 2)
        assert_balanced([a, b])

    asyncio.run(scenario())


def test_replicas_started_together_take_only_their_own_share() -> None:
    """Each new replica announces itself and waits before taking accounts, so the first one
    up does not take the others' accounts for the seconds until they show up (it listed
    their services and started their reconcilers for nothing)."""

    async def scenario() -> None:
        leases, clock = MemoryLeases(), Clock()
        replicas = [replica(leases, clock, name) for name in ("a", "b", "c")]
        share = assign(KEYS, [r.identity for r in replicas])
        for _ in range(FIRST_HOLD + 2):
            for sharder in replicas:
                await sharder.step()
                taken = {key: sharder.identity for key in sharder.held}
                assert all(share[key] == who for key, who in taken.items()), taken
            clock.now += RETRY_SECONDS
        assert_balanced(replicas)

    asyncio.run(scenario())
