"""When the account observer lists again: at its poll interval, at once when its CloudAccount
changes, and one active interval after the last list began when a service becomes active
(not at every write: at 20 writes a second that listed 1,000 services back to back)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from test_claim_rule import RecordingKube

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import AccountObserver

ACTIVE = 1.0
STEADY = 4.0
# Wide margins: only which deadline ended the wait matters, on however busy a machine.


def _waited(poke: Callable[[AccountObserver], None] | None, poke_after: float = 0.05) -> float:
    observer = AccountObserver(
        ("ns", "acct"), RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST
    )

    async def run() -> float:
        observer._last_started = time.monotonic()
        observer._active_delay = ACTIVE
        start = time.monotonic()
        waiting = asyncio.ensure_future(observer._wait(STEADY))
        if poke is not None:
            await asyncio.sleep(poke_after)
            poke(observer)
        await asyncio.wait_for(waiting, timeout=STEADY + 1)
        return time.monotonic() - start

    return asyncio.run(run())


def _writes(observer: AccountObserver) -> None:
    for i in range(5):  # five services write at once, as during convergence
        observer.mark_active(f"ms-{i}", True)


@pytest.mark.parametrize(
    ("poke", "low", "high"),
    [
        pytest.param(None, STEADY, STEADY + 1.0, id="nothing-happens"),
        pytest.param(AccountObserver.wake, 0.0, ACTIVE / 2, id="the-account-changed"),
        pytest.param(_writes, ACTIVE - 0.01, STEADY / 2, id="services-became-active"),
    ],
)
def test_when_the_observer_lists_again(
    poke: Callable[[AccountObserver], None] | None, low: float, high: float
) -> None:
    assert low <= _waited(poke) <= high


def test_a_service_becoming_active_long_after_the_last_list_lists_at_once() -> None:
    assert _waited(_writes, poke_after=ACTIVE + 0.1) <= ACTIVE + 0.1 + ACTIVE / 2


@pytest.mark.parametrize(
    ("writes_wait", "low", "high"),
    [
        pytest.param(True, STEADY - 0.01, STEADY + 1.0, id="writes-still-wait"),
        pytest.param(False, ACTIVE - 0.01, STEADY / 2, id="the-last-writes-went-out"),
    ],
)
def test_the_duty_cycle_holds_only_while_writes_wait(
    writes_wait: bool, low: float, high: float
) -> None:
    """The wait began while writes waited for budget (its delay stretched to the duty cycle);
    when the last writes have gone out, a service becoming active brings the next list to
    one active interval after the last began (the last transitions are seen sooner)."""
    observer = AccountObserver(
        ("ns", "acct"), RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST
    )
    observer._writes_waiting = lambda: writes_wait  # type: ignore[method-assign]

    async def run() -> float:
        observer._last_started = time.monotonic()
        observer._active_delay, observer._duty_delay = ACTIVE, STEADY
        start = time.monotonic()
        waiting = asyncio.ensure_future(observer._wait(STEADY))
        await asyncio.sleep(0.05)
        _writes(observer)
        await asyncio.wait_for(waiting, timeout=STEADY + 1)
        return time.monotonic() - start

    assert low <= asyncio.run(run()) <= high
