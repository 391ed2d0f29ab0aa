"""The cloud layer: signers, credentials, errors, rate budgets and the provider protocol.

The public API is re-exported here; per-cloud pieces live in `tencent`, `huawei` and `baidu`.
Nothing in this package imports the vendors' SDKs: they are test-only oracles.
"""

from cloudinfer.cloud.backoff import Backoff
from cloudinfer.cloud.baidu.signer import BaiduSigner
from cloudinfer.cloud.budget import CallRate, RateBudgets, TokenBucket
from cloudinfer.cloud.clock import Clock, SystemClock, WallClock
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    Credentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    CloudError,
    ConflictError,
    InvalidRequestError,
    MalformedResponseError,
    NoAnswerError,
    NotFoundError,
    QuotaError,
    Retry,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
)
from cloudinfer.cloud.exchange import Reply
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.huawei.signer import HuaweiSigner
from cloudinfer.cloud.model import (
    ApplyResult,
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    Combined,
    FieldChange,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    Resume,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    Stop,
    Support,
)
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudinfer.cloud.redaction import describe_request
from cloudinfer.cloud.retry import RetryPolicy, call_with_budget
from cloudinfer.cloud.tencent.signer import TencentSigner

__all__ = [
    "Account",
    "ApplyResult",
    "AuthError",
    "Backoff",
    "BaiduCredentials",
    "BaiduSigner",
    "BusyError",
    "CallRate",
    "Capabilities",
    "Change",
    "ClearRateLimit",
    "ClearSchedule",
    "Clock",
    "ClockSkewError",
    "Cloud",
    "CloudError",
    "CloudProvider",
    "Combined",
    "ConflictError",
    "Credentials",
    "FieldChange",
    "HuaweiCredentials",
    "HuaweiSigner",
    "InvalidRequestError",
    "MalformedResponseError",
    "NoAnswerError",
    "NotFoundError",
    "ObservedService",
    "Phase",
    "QuotaError",
    "RateBudgets",
    "RateLimitScope",
    "RateLimitSetting",
    "Replicas",
    "Reply",
    "Resume",
    "Retry",
    "RetryPolicy",
    "Scale",
    "Secret",
    "ServiceField",
    "SetRateLimit",
    "SetSchedule",
    "Stop",
    "Support",
    "SystemClock",
    "TencentCredentials",
    "TencentSigner",
    "ThrottledError",
    "TokenBucket",
    "TransientError",
    "UnsupportedActionError",
    "WallClock",
    "call_with_budget",
    "describe_request",
    "new_async_client",
]
