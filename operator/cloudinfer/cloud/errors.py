"""The cloud error taxonomy: every failure of a cloud call is one of these classes.

Each class carries its retry policy and a machine-readable condition reason, in the spirit of
`kopf.PermanentError`/`kopf.TemporaryError`: callers switch on the class, never on a cloud's
error code. The per-cloud tables in `<cloud>/errors.py` map documented codes to these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus
from typing import ClassVar, Final

MAX_MESSAGE_CHARS: Final = 500
"""Cloud messages are kept for people, but bounded so one error cannot flood a log line."""


class Retry(StrEnum):
    """How a caller should react to an error."""

    NEVER = "never"
    """Terminal until the desired state, the account or the code changes."""
    BACKOFF = "backoff"
    """Retry with jittered exponential backoff, within the rate budget."""
    SLOW = "slow"
    """Retry rarely (minutes): it needs a person or the platform to act first."""


class CloudError(Exception):
    """A failed cloud call. The class says what to do; the fields say what happened.

    A bare `CloudError` is an error we could not classify: back off and retry, as Kopf does
    with an unknown exception.
    """

    retry: ClassVar[Retry] = Retry.BACKOFF
    reason: ClassVar[str] = "CloudError"
    """A CamelCase condition reason for the resource's status."""
    may_have_applied: ClassVar[bool] = False
    """The request may have reached the cloud and been carried out, but no readable answer
    says so: a write is then not sent again until an observation made after it shows
    whether it took effect (docs/architecture.md, "Errors and retries")."""

    def __init__(
        self,
        message: str,
        *,
        cloud: str,
        action: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message[:MAX_MESSAGE_CHARS]
        self.cloud = cloud
        self.action = action
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.retry is not Retry.NEVER

    def __str__(self) -> str:
        where = f"{self.cloud} {self.action}" if self.action else self.cloud
        what = f"{self.code}: {self.message}" if self.code else self.message
        details = [f"request_id={self.request_id}"] if self.request_id else []
        if self.http_status is not None:
            details.append(f"http_status={self.http_status}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{where}: {what}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cloud={self.cloud!r}, action={self.action!r}, "
            f"code={self.code!r}, request_id={self.request_id!r}, "
            f"http_status={self.http_status!r}, message={self.message!r})"
        )


class ThrottledError(CloudError):
    """The cloud's rate limit was hit. Back off and shrink the account's rate budget."""

    reason = "CloudThrottled"


class TransientError(CloudError):
    """A temporary failure: the cloud's internals, a dependency, the network or a timeout."""

    reason = "CloudUnavailable"


class MalformedResponseError(TransientError):
    """The reply could not be read as the cloud's envelope: not JSON, an HTML error page, or
    JSON missing the fields the API documents. Retried like a transient error, since gateways
    and proxies produce such pages under load."""

    reason = "CloudMalformedResponse"
    may_have_applied = True


class NoAnswerError(TransientError):
    """The request was sent but no answer came: it timed out while waiting for the reply, the
    connection dropped after the request went out, or a gateway gave up on the cloud (502,
    504). The cloud may have carried it out."""

    reason = "CloudNoAnswer"
    may_have_applied = True


class ConflictError(CloudError):
    """The resource's current state forbids the operation, or the name is taken."""

    retry = Retry.NEVER
    reason = "CloudConflict"


class BusyError(ConflictError):
    """The resource is busy with another operation; retry once it settles."""

    retry = Retry.BACKOFF
    reason = "CloudBusy"


class NotFoundError(CloudError):
    """The resource does not exist (any more)."""

    retry = Retry.NEVER
    reason = "CloudNotFound"


class InvalidRequestError(CloudError):
    """The cloud rejected the request's parameters. Retrying the same request cannot help."""

    retry = Retry.NEVER
    reason = "CloudInvalidRequest"


class AuthError(CloudError):
    """Authentication or authorisation failed: wrong keys, missing permission, bad signature."""

    retry = Retry.NEVER
    reason = "CloudAuthFailed"


class PermissionDeniedError(AuthError):
    """The credentials are valid but not allowed to do this (a missing IAM/CAM policy)."""

    reason = "CloudPermissionDenied"


class ClockSkewError(AuthError):
    """The signature's timestamp is outside the cloud's window: the local clock is off."""

    retry = Retry.SLOW
    reason = "CloudClockSkew"


class QuotaError(CloudError):
    """Quota, capacity or billing stops the operation (sold out, over quota, in arrears)."""

    retry = Retry.SLOW
    reason = "CloudQuotaOrBilling"


class UnsupportedActionError(CloudError):
    """The API action does not exist or was retired (e.g. TI-ONE `ActionOffline`)."""

    retry = Retry.NEVER
    reason = "CloudUnsupportedAction"


ErrorTable = Mapping[str, type[CloudError]]
"""Documented error codes of one cloud, mapped to their class."""


def lookup(table: ErrorTable, code: str) -> type[CloudError] | None:
    """The class for `code`, falling back to its dotted parents (`A.B.C` → `A.B` → `A`).

    Tencent codes are hierarchical, and a new sub-code of `InvalidParameterValue` is still an
    invalid parameter.
    """
    candidate = code
    while True:
        found = table.get(candidate)
        if found is not None:
            return found
        if "." not in candidate:
            return None
        candidate = candidate.rsplit(".", 1)[0]


STATUS_CLASSES: Final[Mapping[int, type[CloudError]]] = {
    HTTPStatus.TOO_MANY_REQUESTS: ThrottledError,
    HTTPStatus.UNAUTHORIZED: AuthError,
    HTTPStatus.FORBIDDEN: AuthError,
    HTTPStatus.NOT_FOUND: NotFoundError,
    HTTPStatus.CONFLICT: ConflictError,
    HTTPStatus.PRECONDITION_FAILED: ConflictError,
    HTTPStatus.REQUEST_TIMEOUT: TransientError,
}
"""HTTP statuses with a meaning of their own (RFC 9110)."""


def class_for_status(status: int) -> type[CloudError]:
    """The class an HTTP status implies when the body names no known code."""
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return TransientError
    if status >= HTTPStatus.BAD_REQUEST:
        return InvalidRequestError
    return CloudError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header given in seconds; dates and junk are ignored."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
