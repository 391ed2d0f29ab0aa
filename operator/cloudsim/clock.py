"""A virtual clock with a speed factor and explicit advance, so tests never sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class VirtualClock:
    """Virtual epoch seconds that run at `speed` times real time, plus explicit jumps.

    `speed=0` freezes the clock: it then moves only through `advance`, which makes rate
    limits and state machines fully deterministic in tests.
    """

    def __init__(
        self,
        *,
        start: float | None = None,
        speed: float = 1.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base_virtual = wall() if start is None else float(start)
        self._base_real = monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Virtual time in epoch seconds."""
        with self._lock:
            return self._base_virtual + (self._monotonic() - self._base_real) * self._speed

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            now_real = self._monotonic()
            self._base_virtual += (now_real - self._base_real) * self._speed
            self._base_real = now_real
            self._speed = float(speed)

    def advance(self, seconds: float) -> float:
        """Jump forward (never backward) and return the new virtual time."""
        if seconds < 0:
            raise ValueError("the virtual clock only moves forward")
        with self._lock:
            self._base_virtual += seconds
            return self._base_virtual + (self._monotonic() - self._base_real) * self._speed

    def wall(self) -> float:
        """Real wall-clock time: clients sign with it, so signatures are checked against it."""
        return self._wall()
