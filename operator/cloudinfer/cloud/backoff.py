"""Jittered, capped exponential backoff between retries, with injected randomness."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

BACKOFF_BASE_SECONDS: Final = 0.5
"""The first retry waits up to this long."""
BACKOFF_FACTOR: Final = 2.0
"""Each further retry doubles the ceiling (the TI-ONE SDK's StandardRetryer uses 2**n s)."""
BACKOFF_CAP_SECONDS: Final = 30.0
"""No single wait exceeds this, so a reconcile never stalls for minutes inside one call."""
RETRY_AFTER_CAP_SECONDS: Final = 300.0
"""A cloud's Retry-After is honoured up to this; longer values are treated as this."""


@dataclass
class Backoff:
    """ "Full jitter" backoff: a uniform draw from [0, min(cap, base * factor**attempt)].

    Full jitter spreads the retries of many clients that failed together, which is what a
    throttled account with many services needs (AWS Architecture Blog, "Exponential Backoff
    And Jitter", 2015).
    """

    base: float = BACKOFF_BASE_SECONDS
    factor: float = BACKOFF_FACTOR
    cap: float = BACKOFF_CAP_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def ceiling(self, attempt: int) -> float:
        """The largest wait before retry number `attempt` (0 for the first retry)."""
        return float(min(self.cap, self.base * self.factor ** max(0, attempt)))

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """The wait before retry number `attempt`; never shorter than the cloud's Retry-After."""
        jittered = self.rng.uniform(0.0, self.ceiling(attempt))
        if retry_after is None:
            return jittered
        return max(jittered, min(retry_after, RETRY_AFTER_CAP_SECONDS))
