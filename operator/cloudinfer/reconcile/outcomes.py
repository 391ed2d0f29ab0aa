"""What a failed call means: one table from cloud error class to condition reason and retry.

The table is the operator's error policy, after the ACK runtime's: throttled and transient
errors back off with jitter (each retry still takes a token from the account's rate budget);
invalid, unsupported and not-permitted writes are terminal: the change is held, not sent
again until the resource's generation, its CloudAccount or the account's Secret changes.
docs/architecture.md, "Errors and retries", gives the reasons for each row.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from cloudinfer.api.conditions import Reason
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
    PermissionDeniedError,
    QuotaError,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
)
from cloudinfer.reconcile.accounts import AccountSetupError

_SECOND = datetime.timedelta(seconds=1)
RETRY_AFTER_CAP = datetime.timedelta(minutes=5)
"""A cloud's Retry-After is honoured up to this."""


class Retry(StrEnum):
    """When a refused write may be sent again."""

    BACKOFF = "Backoff"
    """After a jittered exponential backoff: a uniform draw from [c/2, c], c = base * 2**n
    (n = refusals of this field in a row), capped."""
    FIXED = "Fixed"
    """After `base`, every time (auth and clock errors, as before the policy)."""
    HOLD = "Hold"
    """Not until the resource's generation or the account fingerprint changes."""


@dataclass(frozen=True)
class Outcome:
    """The policy for one error class."""

    reason: Reason
    retry: Retry
    base: datetime.timedelta = 15 * _SECOND
    cap: datetime.timedelta = 5 * 60 * _SECOND

    def retry_at(
        self,
        refused_at: datetime.datetime,
        attempt: int,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> datetime.datetime | None:
        """When the refused write may be sent again (None: held). `attempt` counts the
        refusals of this field in a row before this one."""
        if self.retry is Retry.HOLD:
            return None
        if self.retry is Retry.FIXED:
            return refused_at + self.base
        doublings: int = min(max(attempt, 0), 16)
        ceiling = min(self.cap, self.base * (1 << doublings))
        delay = ceiling * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(RETRY_AFTER_CAP, retry_after * _SECOND))
        return refused_at + delay


# Most specific class first: the first `isinstance` match wins.
OUTCOMES: tuple[tuple[type[CloudError], Outcome], ...] = (
    (ThrottledError, Outcome(Reason.CLOUD_THROTTLED, Retry.BACKOFF)),
    (ClockSkewError, Outcome(Reason.AUTH_FAILED, Retry.FIXED)),
    (PermissionDeniedError, Outcome(Reason.PERMISSION_DENIED, Retry.HOLD)),
    (AuthError, Outcome(Reason.AUTH_FAILED, Retry.FIXED)),
    (NotFoundError, Outcome(Reason.SERVICE_NOT_FOUND, Retry.BACKOFF)),
    (QuotaError, Outcome(Reason.QUOTA_EXCEEDED, Retry.BACKOFF, 60 * _SECOND, 30 * 60 * _SECOND)),
    (UnsupportedActionError, Outcome(Reason.UNSUPPORTED_BY_CLOUD, Retry.HOLD)),
    (BusyError, Outcome(Reason.CONVERGING, Retry.BACKOFF)),
    (ConflictError, Outcome(Reason.CLOUD_REJECTED, Retry.BACKOFF)),
    (InvalidRequestError, Outcome(Reason.CLOUD_REJECTED, Retry.HOLD)),
    # Retried after 2.5-5 s at first (a slow cloud may still be applying it), and not
    # before an observation that started after that (planner.py).
    (NoAnswerError, Outcome(Reason.CLOUD_UNREACHABLE, Retry.BACKOFF, 5 * _SECOND)),
    (MalformedResponseError, Outcome(Reason.CLOUD_UNREACHABLE, Retry.BACKOFF)),
    (TransientError, Outcome(Reason.CLOUD_UNREACHABLE, Retry.BACKOFF)),
    (CloudError, Outcome(Reason.CLOUD_UNREACHABLE, Retry.BACKOFF)),
)
UNCLASSIFIED = OUTCOMES[-1][1]
_BY_CLASS_NAME = {cls.reason: outcome for cls, outcome in OUTCOMES}
_MAY_HAVE_APPLIED = frozenset(cls.reason for cls, _ in OUTCOMES if cls.may_have_applied)
HOLD_REASONS = tuple(
    dict.fromkeys(outcome.reason for _, outcome in OUTCOMES if outcome.retry is Retry.HOLD)
)
"""The reasons a held write gives Ready."""


def outcome_of(error: CloudError) -> Outcome:
    for cls, outcome in OUTCOMES:
        if isinstance(error, cls):
            return outcome
    return UNCLASSIFIED


def outcome_named(error_class: str | None) -> Outcome:
    """The outcome of a refusal recorded in the ledger, by the class's `reason` name (an
    unknown name, e.g. from a newer operator, is treated as unclassified)."""
    return _BY_CLASS_NAME.get(error_class or "", UNCLASSIFIED)


def may_have_applied(error_class: str | None) -> bool:
    """Whether a refusal recorded in the ledger may have been carried out by the cloud all
    the same (no answer came: `CloudError.may_have_applied`)."""
    return (error_class or "") in _MAY_HAVE_APPLIED


def error_reason(error: BaseException) -> Reason:
    """The condition reason for a cloud or setup error."""
    if isinstance(error, AccountSetupError):
        return error.reason
    if isinstance(error, CloudError):
        return outcome_of(error).reason
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
