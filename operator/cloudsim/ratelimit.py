"""Per-key token buckets driven by the virtual clock."""

from __future__ import annotations

from dataclasses import dataclass

from cloudsim.clock import VirtualClock


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by (account, region, action); capacity equals one second of rate.

    The documented limits are "N requests per second", so a bucket holds N tokens and refills
    at N tokens per virtual second. A rate of 0 or less disables limiting for that action.
    """

    def __init__(self, clock: VirtualClock, rates: dict[str, float], default: float = 0.0) -> None:
        self._clock = clock
        self.rates: dict[str, float] = dict(rates)
        self.default = default
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def rate_for(self, action: str) -> float:
        return self.rates.get(action, self.default)

    def allow(self, account: str, region: str, action: str) -> bool:
        rate = self.rate_for(action)
        if rate <= 0:
            return True
        now = self._clock.now()
        key = (account, region, action)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=rate, stamp=now)
        else:
            bucket.tokens = min(rate, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def reset(self) -> None:
        self._buckets.clear()
