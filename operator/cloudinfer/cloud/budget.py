"""Rate budgets: one token bucket per (account, action class), shrinking on throttling.

Every call to a cloud first takes a token from the bucket of its account and action class, so
a thousand services of one account share one budget instead of making a thousand parallel calls.
Buckets start at the documented limit (`<cloud>/limits.py`), halve when the cloud throttles us
(multiplicative decrease) and creep back slowly (additive increase), like TCP congestion control.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from cloudinfer.cloud.clock import Clock
from cloudinfer.cloud.errors import CloudError

DEFAULT_BURST: Final = 1
"""Tokens a bucket holds. With 1 the bucket paces calls evenly, so no window of one second ever
sees more than `per_second` calls. The clouds do not document their window (fixed or sliding),
and pacing is safe under both."""

CATCH_UP_SECONDS: Final = 0.25
"""A waiter that wakes up to this late keeps its slot's place in the pacing, and the waiters
after it go as soon as the last second's calls allow (see `TokenBucket`), so a busy event loop
does not lower the long-run rate. A longer stall is not made up."""

WINDOW_SECONDS: Final = 1.0
"""No window this long holds more calls than the limit allows in it, whatever the pacing."""

AIMD_DECREASE_FACTOR: Final = 0.5
"""On throttling the rate is multiplied by this (TCP's multiplicative decrease)."""

THROTTLE_COOLDOWN_SECONDS: Final = 1.0
"""Further throttling replies within this time after a decrease are answers to calls made at
the old rate, so they do not shrink the rate again."""

MIN_RATE_FRACTION: Final = 0.05
"""The rate never shrinks below this fraction of the configured limit..."""
MIN_RATE_PER_SECOND: Final = 0.2
"""...nor below one call every five seconds, so observation always makes progress."""

RECOVERY_DELAY_SECONDS: Final = 10.0
"""After a throttling reply the rate stays put this long before it starts to recover."""
RECOVERY_FRACTION_PER_SECOND: Final = 0.02
"""Then it grows by this fraction of the limit per second: from half to full in 25 s."""


@dataclass(frozen=True, slots=True)
class CallRate:
    """A call rate: `per_second` calls on average, at most `burst` at once."""

    per_second: float
    burst: int = DEFAULT_BURST

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError(f"per_second must be positive, not {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")


CallRecorder = Callable[[str, float, CloudError | None], None]
"""Told of every finished call: (action class, seconds the call took, its error or None).
The operator's metrics implement it (reconcile/metrics.py); the cloud layer knows no
Prometheus."""


@dataclass(frozen=True, slots=True)
class BucketStats:
    """A bucket's state for metrics: read without changing the bucket."""

    limit_per_second: float
    rate_per_second: float
    calls: int
    """Tokens taken since the bucket was made."""
    waited_seconds: float
    """Seconds callers spent waiting for a token, summed over callers."""


class TokenBucket:
    """A paced token bucket (GCRA) with an adaptive rate.

    Waiters queue in arrival order (an `asyncio.Lock` is FIFO) and only the head of the queue
    holds a slot: it sleeps until the slot and takes the token when it wakes. A slot is never
    reserved ahead for a queued waiter, so a rate change (throttling, recovery, a new limit)
    applies to the whole backlog at once. Slots missed by a busy event loop are made up (up to
    CATCH_UP_SECONDS), but never beyond the limit of any one-second window: the last calls'
    times are kept, and a call waits until the one ceil(limit) calls before it is a second old.
    """

    def __init__(self, limit: CallRate, clock: Clock) -> None:
        self._clock = clock
        self._limit = limit
        self._rate = limit.per_second
        now = clock.monotonic()
        self._tat = now  # theoretical arrival time of the next call
        self._recent: deque[float] = deque(maxlen=self._window_capacity(limit))
        self._queue = asyncio.Lock()
        self._waiting = 0
        self._last_throttle: float | None = None
        self._recovered_at = now
        self._calls = 0
        self._waited = 0.0
        self.recorder: Callable[[float, CloudError | None], None] | None = None
        """Told of each finished call (seconds, error or None) by `retry.call_with_budget`."""

    @property
    def limit(self) -> CallRate:
        return self._limit

    @property
    def rate(self) -> float:
        """The current rate in calls per second, after recovery up to now."""
        self._recover(self._clock.monotonic())
        return self._rate

    @property
    def floor(self) -> float:
        return min(
            self._limit.per_second,
            max(self._limit.per_second * MIN_RATE_FRACTION, MIN_RATE_PER_SECOND),
        )

    @staticmethod
    def _window_capacity(limit: CallRate) -> int:
        return math.ceil(limit.per_second * WINDOW_SECONDS) + limit.burst - 1

    def set_limit(self, limit: CallRate) -> None:
        """Change the configured limit (e.g. from a CloudAccount), keeping any shrinkage."""
        if limit == self._limit:
            return
        fraction = self._rate / self._limit.per_second
        self._limit = limit
        self._rate = max(self.floor, limit.per_second * fraction)
        self._tat = min(self._tat, self._clock.monotonic() + 1.0 / self._rate)
        self._recent = deque(self._recent, maxlen=self._window_capacity(limit))

    def _wait(self) -> float:
        """Seconds until the next token; 0 takes it."""
        now = self._clock.monotonic()
        self._recover(now)
        interval = 1.0 / self._rate
        slot = self._tat - (self._limit.burst - 1) * interval
        if slot > now:
            return slot - now
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0] + WINDOW_SECONDS > now:
            return recent[0] + WINDOW_SECONDS - now
        # Waking up late (a busy event loop) by up to CATCH_UP_SECONDS is made up by the next
        # slots, so the rate stays at the limit; after a longer stall the next slot counts from
        # now, so the missed slots never fire as one burst.
        on_time = now - self._tat < max(interval, CATCH_UP_SECONDS)
        self._tat = (self._tat if on_time else now) + interval
        recent.append(now)
        return 0.0

    @property
    def waiting(self) -> int:
        """Callers waiting for a token now."""
        return self._waiting

    async def acquire(self) -> None:
        """Wait for a token of this bucket, after every earlier waiter."""
        queued = self._clock.monotonic()
        self._waiting += 1
        try:
            async with self._queue:
                while (wait := self._wait()) > 0:
                    await self._clock.sleep(wait)
        finally:
            self._waiting -= 1
        self._calls += 1
        self._waited += self._clock.monotonic() - queued

    def record(self, seconds: float, error: CloudError | None) -> None:
        """A call made with this bucket's token finished after `seconds`."""
        if self.recorder is not None:
            self.recorder(seconds, error)

    def stats(self) -> BucketStats:
        """The limit, the current rate (with the recovery due by now), the calls made and
        the time spent waiting. Changes nothing, so a metrics scrape on another thread
        cannot disturb the pacing."""
        now = self._clock.monotonic()
        rate = self._rate
        start = self._recovered_at
        if self._last_throttle is not None:
            start = max(start, self._last_throttle + RECOVERY_DELAY_SECONDS)
        if now > start and rate < self._limit.per_second:
            step = self._limit.per_second * RECOVERY_FRACTION_PER_SECOND * (now - start)
            rate = min(self._limit.per_second, rate + step)
        return BucketStats(self._limit.per_second, rate, self._calls, self._waited)

    def on_throttled(self) -> None:
        """The cloud throttled a call: halve the rate (once per cooldown), and wait a full
        interval at the new rate before the next call."""
        now = self._clock.monotonic()
        self._recover(now)
        if self._last_throttle is not None and now - self._last_throttle < (
            THROTTLE_COOLDOWN_SECONDS
        ):
            return
        self._last_throttle = now
        self._rate = max(self.floor, self._rate * AIMD_DECREASE_FACTOR)
        self._tat = now + 1.0 / self._rate

    def _recover(self, now: float) -> None:
        start = self._recovered_at
        if self._last_throttle is not None:
            start = max(start, self._last_throttle + RECOVERY_DELAY_SECONDS)
        if now > start and self._rate < self._limit.per_second:
            step = self._limit.per_second * RECOVERY_FRACTION_PER_SECOND * (now - start)
            self._rate = min(self._limit.per_second, self._rate + step)
        self._recovered_at = max(self._recovered_at, now)


ActionClass = str
"""A cloud's rate-limit dimension, e.g. a TI-ONE API name or a ModelArts read/write class."""


class RateBudgets:
    """The buckets of one cloud, keyed by (account, action class), created on first use.

    `limits` are the documented per-action limits, `default` covers undocumented actions, and
    `configure(account, overrides)` applies an account's own limits (from its CloudAccount).
    """

    def __init__(
        self,
        limits: Mapping[ActionClass, CallRate],
        *,
        default: CallRate,
        clock: Clock,
    ) -> None:
        self._limits = dict(limits)
        self._default = default
        self._clock = clock
        self._overrides: dict[str, dict[ActionClass, CallRate]] = {}
        self._buckets: dict[tuple[str, ActionClass], TokenBucket] = {}
        self._recorder: CallRecorder | None = None

    def record_calls_with(self, recorder: CallRecorder | None) -> None:
        """Tell `recorder` of every call made with a token of these budgets, from now on."""
        self._recorder = recorder
        for (_, action_class), bucket in list(self._buckets.items()):
            bucket.recorder = self._bucket_recorder(action_class)

    def _bucket_recorder(
        self, action_class: ActionClass
    ) -> Callable[[float, CloudError | None], None] | None:
        recorder = self._recorder
        if recorder is None:
            return None
        return lambda seconds, error: recorder(action_class, seconds, error)

    def buckets(self) -> Iterator[tuple[str, ActionClass, TokenBucket]]:
        """(account, action class, bucket) of every bucket used so far."""
        for (account, action_class), bucket in list(self._buckets.items()):
            yield account, action_class, bucket

    def limit_for(self, account: str, action_class: ActionClass) -> CallRate:
        override = self._overrides.get(account, {}).get(action_class)
        return override or self._limits.get(action_class, self._default)

    def configure(self, account: str, overrides: Mapping[ActionClass, CallRate]) -> None:
        """Replace the account's own limits; existing buckets adopt them at once."""
        self._overrides[account] = dict(overrides)
        for (bucket_account, action_class), bucket in self._buckets.items():
            if bucket_account == account:
                bucket.set_limit(self.limit_for(account, action_class))

    def bucket(self, account: str, action_class: ActionClass) -> TokenBucket:
        key = (account, action_class)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.limit_for(account, action_class), self._clock)
            bucket.recorder = self._bucket_recorder(action_class)
            self._buckets[key] = bucket
        return bucket
