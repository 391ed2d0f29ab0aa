"""TI-ONE error codes mapped to the taxonomy (docs/clouds/tencent-tione.md#errors).

Codes come from the Go SDK's per-action lists and the Python SDK's `errorcodes.py`; the
classes follow the retry recommendations in docs/clouds/tencent-tione.md#errors. Unknown
sub-codes fall back to their dotted parent (`InvalidParameterValue.Foo` → `InvalidParameterValue`).
"""

from __future__ import annotations

from typing import Final

from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    CloudError,
    ConflictError,
    ErrorTable,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
)


def _all(cls: type[CloudError], *codes: str) -> dict[str, type[CloudError]]:
    return dict.fromkeys(codes, cls)


TENCENT_ERRORS: Final[ErrorTable] = {
    **_all(
        ThrottledError,
        "RequestLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
        "RequestLimitExceeded.IPLimitExceeded",
    ),
    **_all(
        AuthError,
        "AuthFailure",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.InvalidSecretId",
        "AuthFailure.TokenFailure",
    ),
    # The key is valid, its CAM policy does not allow the action.
    **_all(
        PermissionDeniedError,
        "AuthFailure.UnauthorizedOperation",
        "AuthFailure.NoPermission",
        "UnauthorizedOperation",
        "UnauthorizedOperation.NoPermission",
        "FailedOperation.NoPermission",
    ),
    # Clock skew over 5 minutes: fix the clock, then retry.
    "AuthFailure.SignatureExpire": ClockSkewError,
    **_all(
        TransientError,
        # "CAM系统异常": the permission system itself failed [INFERRED transient].
        "AuthFailure.CamException",
        "InternalError",
        "FailedOperation",
        "FailedOperation.ApiGatewayQueryFailed",
        "FailedOperation.StsQueryFailed",
        "FailedOperation.ClusterQueryFailed",
        "FailedOperation.BillingQueryFailed",
        "FailedOperation.QueryDatabaseFail",
        "FailedOperation.ExecDatabaseFail",
        "FailedOperation.ExecTagFail",
        "FailedOperation.QueryTagFail",
        # The SDK's own names for a non-200 status and a transport failure.
        "ServerNetworkError",
        "ClientNetworkError",
    ),
    **_all(NotFoundError, "ResourceNotFound", "FailedOperation.RecordNotFound"),
    **_all(
        InvalidRequestError,
        "InvalidParameter",
        "InvalidParameter.ValidateError",
        "InvalidParameter.ModelFileInvalid",
        "InvalidParameterValue",
        "InvalidParameterValue.PageLimitExceeded",
        "MissingParameter",
        "UnknownParameter",
        "FailedOperation.UnknownInstanceType",
        "FailedOperation.UnmarshalData",
        # An operation this service does not support; not a retired action, so no fallback.
        "UnsupportedOperation",
    ),
    # "request is being processed, try later" and "resource in use": retry once it settles.
    **_all(BusyError, "FailedOperation.Processing", "ResourceInUse"),
    **_all(
        ConflictError,
        "FailedOperation.NotAllow",
        "OperationDenied",
        "OperationDenied.NotAllow",
        "FailedOperation.DuplicateName",
    ),
    **_all(
        QuotaError,
        "ResourceInsufficient",
        "ResourceInsufficient.QuotaInsufficient",
        "ResourcesSoldOut",
        "LimitExceeded",
        "OperationDenied.BalanceInsufficient",
        "FailedOperation.InsufficientWhitelistQuota",
    ),
    # A retired API: the provider falls back (PartialConfig → ModifyModelService).
    **_all(UnsupportedActionError, "InvalidAction", "ActionOffline"),
}
