"""ModelArts management rate budgets.

No per-API limit for ModelArts service management is documented; the API gateway throttles with
`APIGW.0308`/429 (clouds.md §3.6) [UNVERIFIED]. These budgets are our conservative defaults, to
be overridden per CloudAccount; AIMD shrinks them further if the gateway still throttles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.budget import RateLimit

READ: Final = "read"
"""GET calls: list and detail."""
WRITE: Final = "write"
"""PUT/POST calls: property updates, config updates, start/stop."""

HUAWEI_RATE_LIMITS: Final[Mapping[str, RateLimit]] = {
    READ: RateLimit(10),  # [INFERRED] conservative default, no documented limit
    WRITE: RateLimit(5),  # [INFERRED] writes start rollouts; keep them slower
}

HUAWEI_DEFAULT_RATE_LIMIT: Final = RateLimit(5)
