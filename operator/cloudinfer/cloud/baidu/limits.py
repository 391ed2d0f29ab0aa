"""Qianfan console v2 rate budgets.

No rate limit for the console management actions is documented (clouds.md §4.6) [UNVERIFIED];
the inference-side RPM/TPM limits do not apply to them. These budgets are our conservative
defaults, to be overridden per CloudAccount; AIMD shrinks them if the console throttles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.budget import RateLimit

READ: Final = "read"
"""DescribeService, DescribeServices."""
WRITE: Final = "write"
"""ScaleService, DeactivateService."""

BAIDU_RATE_LIMITS: Final[Mapping[str, RateLimit]] = {
    READ: RateLimit(10),  # [INFERRED] conservative default, no documented limit
    WRITE: RateLimit(5),  # [INFERRED]
}

BAIDU_DEFAULT_RATE_LIMIT: Final = RateLimit(5)
