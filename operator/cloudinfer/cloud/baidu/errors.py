"""Qianfan console and BCE error codes mapped to the taxonomy (docs/clouds/baidu-qianfan.md#errors).

String codes are the BCE common codes of the v2 `{code, message}` envelope; numeric codes are
the Qianfan ones the SDK knows (`error_code` bodies). Codes not listed here are classified by
HTTP status.
"""

from __future__ import annotations

from typing import Final

from cloudinfer.cloud.errors import (
    AuthError,
    ClockSkewError,
    CloudError,
    ConflictError,
    ErrorTable,
    InvalidRequestError,
    QuotaError,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
)

CREDENTIAL_NOT_FOUND: Final = "Could not find credential"
"""The gateway's message for an unknown AK, sent with code `NotFound`. It is an auth failure,
not a missing resource (qianfan `resources/requestor/base.py`)."""


def _all(cls: type[CloudError], *codes: str) -> dict[str, type[CloudError]]:
    return dict.fromkeys(codes, cls)


BAIDU_ERRORS: Final[ErrorTable] = {
    **_all(
        AuthError,
        "AccessDenied",
        "InvalidAccessKeyId",
        "InvalidHTTPAuthHeader",
        "SignatureDoesNotMatch",  # the gateway's wrong-SK message
    ),
    # The signature's x-bce-date is outside its validity window.
    "RequestExpired": ClockSkewError,
    # The account has not opened the service: a billing/subscription matter.
    "OptInRequired": QuotaError,
    **_all(InvalidRequestError, "InappropriateJSON", "MalformedJSON", "InvalidHTTPRequest"),
    "InvalidURI": InvalidRequestError,
    "InvalidVersion": UnsupportedActionError,  # 404: the API version does not exist
    "PreconditionFailed": ConflictError,
    "InternalError": TransientError,
    # Qianfan numeric codes. The SDK retries 18, 336100 and 500000.
    "18": ThrottledError,  # QPSLimitReached
    "336100": ThrottledError,  # ServerHighLoad: slow down, like throttling
    "336501": ThrottledError,  # RPM limit (inference side)
    "336502": ThrottledError,  # TPM limit (inference side)
    "500000": TransientError,  # ConsoleInternalError
    # The SDK's name for code 18; a string code in v2 envelopes [INFERRED].
    "QPSLimitReached": ThrottledError,
    # ScaleService beyond the compute unit's free units: surface it, do not retry
    # (docs/clouds/baidu-qianfan.md#errors).
    # The code name is not documented [INFERRED from the TI-ONE capacity code].
    "ResourceInsufficient": QuotaError,
}
