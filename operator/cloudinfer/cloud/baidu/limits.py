"""Qianfan console v2 rate budgets, one per action.

No rate limit for the console management actions is documented
(docs/clouds/baidu-qianfan.md#rate-limits) [UNVERIFIED]; the inference-side RPM/TPM limits do
not apply to them. These budgets are our conservative defaults, to be overridden per
CloudAccount; AIMD shrinks them if the console throttles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.budget import CallRate

DESCRIBE_SERVICES: Final = "DescribeServices"
DESCRIBE_SERVICE: Final = "DescribeService"
SCALE_SERVICE: Final = "ScaleService"
DEACTIVATE_SERVICE: Final = "DeactivateService"

BAIDU_RATE_LIMITS: Final[Mapping[str, CallRate]] = {
    DESCRIBE_SERVICES: CallRate(10),  # [INFERRED] conservative default, no documented limit
    DESCRIBE_SERVICE: CallRate(10),  # [INFERRED]
    SCALE_SERVICE: CallRate(5),  # [INFERRED]
    DEACTIVATE_SERVICE: CallRate(5),  # [INFERRED]
}

BAIDU_DEFAULT_RATE_LIMIT: Final = CallRate(5)
