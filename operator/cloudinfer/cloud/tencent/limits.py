"""TI-ONE API rate limits, per API, region and sub-account
(docs/clouds/tencent-tione.md#rate-limits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.budget import CallRate

DESCRIBE_MODEL_SERVICE: Final = "DescribeModelService"
DESCRIBE_MODEL_SERVICE_GROUP: Final = "DescribeModelServiceGroup"
DESCRIBE_MODEL_SERVICE_GROUPS: Final = "DescribeModelServiceGroups"
MODIFY_MODEL_SERVICE: Final = "ModifyModelService"
MODIFY_MODEL_SERVICE_PARTIAL_CONFIG: Final = "ModifyModelServicePartialConfig"
CREATE_MODEL_SERVICE: Final = "CreateModelService"

DEFAULT_PER_SECOND: Final = 20
""""默认接口请求频率限制: 20次/秒" (default 20 requests/s) [SEED]; also the limit of any TI-ONE
API the overview does not list."""

TENCENT_RATE_LIMITS: Final[Mapping[str, CallRate]] = {
    # API overview [DOC https://cloud.tencent.com/document/product/851/75060]
    DESCRIBE_MODEL_SERVICE: CallRate(50),
    DESCRIBE_MODEL_SERVICE_GROUP: CallRate(50),
    DESCRIBE_MODEL_SERVICE_GROUPS: CallRate(20),
    MODIFY_MODEL_SERVICE: CallRate(20),
    CREATE_MODEL_SERVICE: CallRate(20),
    # Not in the overview; the seed states the 20/s default for it [SEED].
    MODIFY_MODEL_SERVICE_PARTIAL_CONFIG: CallRate(DEFAULT_PER_SECOND),
}
"""Documented limits, keyed by API name (the action class)."""

TENCENT_DEFAULT_RATE_LIMIT: Final = CallRate(DEFAULT_PER_SECOND)
