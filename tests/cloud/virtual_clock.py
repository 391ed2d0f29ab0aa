"""A virtual clock for the cloud-layer tests (its module name is unique on purpose: test
directories here are not packages)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_IDLE_ROUNDS = 200
"""Settling rounds without any sleeper before the driver declares a deadlock."""


class VirtualClock:
    """A `Clock` whose time moves only when every task is waiting on it.

    `run(main)` drives the event loop: it lets runnable tasks proceed, then jumps to the
    earliest pending wake-up. Tests therefore cover seconds or minutes in milliseconds.
    """

    YIELDS_PER_STEP = 25
    """Event-loop turns granted to woken tasks before time moves on again."""

    def __init__(
        self, start: float = 1_000.0, on_advance: Callable[[float], object] | None = None
    ) -> None:
        self.now = start
        self._on_advance = on_advance
        """Called with each forward jump, e.g. to move a simulator's clock in lockstep."""
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward without waking anyone (for synchronous tests)."""
        self._jump(self.now + seconds)

    def _jump(self, to: float) -> None:
        delta = to - self.now
        if delta > 0:
            self.now = to
            if self._on_advance is not None:
                self._on_advance(delta)

    async def _settle(self) -> None:
        for _ in range(self.YIELDS_PER_STEP):
            await asyncio.sleep(0)

    async def drive(self, main: Awaitable[T]) -> T:
        task = asyncio.ensure_future(main)
        idle_rounds = 0
        while True:
            await self._settle()
            if task.done():
                return task.result()
            if not self._sleepers:
                # Something runnable but slow to settle (an in-process ASGI exchange).
                idle_rounds += 1
                if idle_rounds > MAX_IDLE_ROUNDS:
                    raise RuntimeError("deadlock: the task waits on something but the clock")
                continue
            idle_rounds = 0
            self._jump(self._sleepers[0][0])
            while self._sleepers and self._sleepers[0][0] <= self.now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)

    def run(self, main: Awaitable[T]) -> T:
        return asyncio.run(self.drive(main))  # type: ignore[arg-type]
