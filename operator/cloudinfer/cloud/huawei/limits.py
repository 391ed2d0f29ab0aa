"""ModelArts v1 management rate budgets, one per API.

No per-API limit for ModelArts service management is documented; the API gateway throttles with
`APIGW.0308`/429 (docs/clouds/huawei-modelarts.md#rate-limits) [UNVERIFIED]. These budgets are
our conservative defaults, to be overridden per CloudAccount; AIMD shrinks them further if the
gateway still throttles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.budget import CallRate

LIST_SERVICES: Final = "ListServices"
"""GET /v1/{project_id}/services"""
SHOW_SERVICE: Final = "ShowService"
"""GET /v1/{project_id}/services/{service_id}"""
UPDATE_SERVICE: Final = "UpdateService"
"""PUT /v1/{project_id}/services/{service_id} (status, config, schedule)"""
UPDATE_SERVICE_BY_PROPERTY: Final = "UpdateServiceByProperty"
"""PUT /v1/{project_id}/services/{service_id}/property"""

HUAWEI_RATE_LIMITS: Final[Mapping[str, CallRate]] = {
    LIST_SERVICES: CallRate(10),  # [INFERRED] conservative default, no documented limit
    SHOW_SERVICE: CallRate(10),  # [INFERRED]
    UPDATE_SERVICE: CallRate(5),  # [INFERRED] writes start rollouts; keep them slower
    UPDATE_SERVICE_BY_PROPERTY: CallRate(5),  # [INFERRED]
}

HUAWEI_DEFAULT_RATE_LIMIT: Final = CallRate(5)
