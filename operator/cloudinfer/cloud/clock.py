"""The clock the cloud layer reads and sleeps on, injected so tests can run on virtual time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

WallClock = Callable[[], float]
"""Seconds since the Unix epoch, like `time.time`. Signers stamp requests with it."""


class Clock(Protocol):
    """Monotonic time and sleeping, for rate budgets and retry backoff."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
