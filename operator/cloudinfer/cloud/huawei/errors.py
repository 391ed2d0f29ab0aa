"""ModelArts and API Gateway error codes mapped to the taxonomy
(docs/clouds/huawei-modelarts.md#errors).

Codes not listed here are classified by HTTP status (`errors.class_for_status`): the many
`ModelArts.35xx` parameter errors arrive as 400 and become invalid requests.
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
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    ThrottledError,
    TransientError,
)


def _all(cls: type[CloudError], *codes: str) -> dict[str, type[CloudError]]:
    return dict.fromkeys(codes, cls)


HUAWEI_ERRORS: Final[ErrorTable] = {
    # 429 "The throttling threshold has been reached"; 4206 is the service's traffic limit.
    **_all(ThrottledError, "APIGW.0308", "ModelArts.4206"),
    **_all(
        AuthError,
        "APIGW.0301",  # signature or IAM failure
        "ModelArts.0201",
        "ModelArts.0202",  # token expired
        "ModelArts.0203",
        "ModelArts.0204",
        "ModelArts.4127",
        "ModelArts.0206",  # invalid AK/SK
        "ModelArts.0210",  # project id mismatch
    ),
    "ModelArts.0108": PermissionDeniedError,  # not authorized (an IAM policy)
    # X-Sdk-Date more than 15 minutes off the gateway clock.
    "APIGW.0303": ClockSkewError,
    "ModelArts.3502": NotFoundError,
    # Update not allowed in the current state: retry after the state settles [INFERRED].
    "ModelArts.3519": BusyError,
    "ModelArts.3503": ConflictError,  # already exists
    **_all(
        QuotaError,
        "ModelArts.3520",  # max services
        "ModelArts.3521",  # max running services
        "ModelArts.3522",  # max instances
        "ModelArts.0118",  # QuotaInsufficient
        "ModelArts.3952",  # insufficient resources
        "ModelArts.4116",  # account owes money
        "ModelArts.4118",
        "ModelArts.6201",  # account frozen
        "ModelArts.6203",
    ),
    **_all(TransientError, "ModelArts.3501", "ModelArts.3505"),  # deploy / update failed
}
