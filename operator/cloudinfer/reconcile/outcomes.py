"""What a failed call means for a resource: its condition reason and its message.

One table maps each cloud error class to its reason; docs/architecture.md has it in prose.
"""

from __future__ import annotations

from pydantic import ValidationError

from cloudinfer.api.conditions import Reason
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    QuotaError,
    ThrottledError,
    UnsupportedActionError,
)
from cloudinfer.reconcile.accounts import AccountSetupError

# Most specific class first: the first `isinstance` match wins.
REASONS: tuple[tuple[type[Exception], Reason], ...] = (
    (ThrottledError, Reason.CLOUD_THROTTLED),
    (AuthError, Reason.AUTH_FAILED),  # includes ClockSkewError
    (NotFoundError, Reason.SERVICE_NOT_FOUND),
    (QuotaError, Reason.QUOTA_EXCEEDED),
    (UnsupportedActionError, Reason.UNSUPPORTED_BY_CLOUD),
    (BusyError, Reason.CONVERGING),
    (InvalidRequestError, Reason.CLOUD_REJECTED),
    (ConflictError, Reason.CLOUD_REJECTED),
)


def error_reason(error: BaseException) -> Reason:
    """The condition reason for a cloud or setup error."""
    if isinstance(error, AccountSetupError):
        return error.reason
    for cls, reason in REASONS:
        if isinstance(error, cls):
            return reason
    return Reason.CLOUD_UNREACHABLE


def error_message(error: BaseException) -> str:
    if isinstance(error, ClockSkewError):
        return f"clock skew: the cloud rejected the request time ({error})"
    return str(error)


def validation_problems(err: ValidationError) -> str:
    """The first few problems of a pydantic error, as `path: message`."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5])


def invalid_spec_message(err: ValidationError) -> str:
    return "invalid spec: " + validation_problems(err)
