"""The error policy: each cloud error class has a reason and a retry rule (outcomes.py), and
the planner applies it from the ledger: refusals back off, terminal ones are held until the
generation or the account changes, whatever the time."""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from test_claim_rule import RecordingKube, _observe, _service
from test_planner import NOW, OBSERVED_AT, observed, spec

from cloudinfer.api.conditions import Reason
from cloudinfer.cloud import errors
from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.cloud.model import ApplyResult, Change, ObservedService, ServiceField
from cloudinfer.cloud.provider import Account
from cloudinfer.reconcile import ledger
from cloudinfer.reconcile.ledger import LedgerEntry, Target
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.outcomes import (
    UNCLASSIFIED,
    Outcome,
    Retry,
    outcome_named,
    outcome_of,
)
from cloudinfer.reconcile.planner import PlanInput, plan
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

# The policy, written out independently of the table (docs/architecture.md has the reasons).
POLICY: dict[type[errors.CloudError], tuple[Reason, Retry]] = {
    errors.CloudError: (Reason.CLOUD_UNREACHABLE, Retry.BACKOFF),
    errors.ThrottledError: (Reason.CLOUD_THROTTLED, Retry.BACKOFF),
    errors.TransientError: (Reason.CLOUD_UNREACHABLE, Retry.BACKOFF),
    errors.MalformedResponseError: (Reason.CLOUD_UNREACHABLE, Retry.BACKOFF),
    errors.NoAnswerError: (Reason.CLOUD_UNREACHABLE, Retry.BACKOFF),
    errors.ConflictError: (Reason.CLOUD_REJECTED, Retry.BACKOFF),
    errors.BusyError: (Reason.CONVERGING, Retry.BACKOFF),
    errors.NotFoundError: (Reason.SERVICE_NOT_FOUND, Retry.BACKOFF),
    errors.QuotaError: (Reason.QUOTA_EXCEEDED, Retry.BACKOFF),
    errors.InvalidRequestError: (Reason.CLOUD_REJECTED, Retry.HOLD),
    errors.UnsupportedActionError: (Reason.UNSUPPORTED_BY_CLOUD, Retry.HOLD),
    errors.PermissionDeniedError: (Reason.PERMISSION_DENIED, Retry.HOLD),
    errors.AuthError: (Reason.AUTH_FAILED, Retry.FIXED),
    errors.ClockSkewError: (Reason.AUTH_FAILED, Retry.FIXED),
}


def _all_classes(cls: type[errors.CloudError]) -> set[type[errors.CloudError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _all_classes(sub)
    return found


def test_every_cloud_error_class_has_a_policy() -> None:
    assert _all_classes(errors.CloudError) == set(POLICY)


@pytest.mark.parametrize("cls", list(POLICY), ids=lambda cls: cls.__name__)
def test_each_error_class_maps_to_its_reason_and_retry(cls: type[errors.CloudError]) -> None:
    outcome = outcome_of(cls("refused", cloud="tencent"))
    assert (outcome.reason, outcome.retry) == POLICY[cls]
    assert outcome_named(cls.reason) == outcome  # as read back from the ledger


def test_an_unknown_error_class_in_the_ledger_is_retried_like_an_unclassified_error() -> None:
    assert outcome_named("CloudSomethingNew") == UNCLASSIFIED
    assert outcome_named(None).retry is Retry.BACKOFF


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - seeded jitter draws, not secrets


@pytest.mark.parametrize(
    ("outcome", "attempt", "low", "high"),
    [
        pytest.param(outcome_of(errors.ThrottledError("x", cloud="c")), 0, 7.5, 15, id="first"),
        pytest.param(outcome_of(errors.ThrottledError("x", cloud="c")), 2, 30, 60, id="third"),
        pytest.param(outcome_of(errors.TransientError("x", cloud="c")), 9, 150, 300, id="capped"),
        pytest.param(outcome_of(errors.QuotaError("x", cloud="c")), 0, 30, 60, id="quota-slower"),
        pytest.param(outcome_of(errors.AuthError("x", cloud="c")), 5, 15, 15, id="auth-fixed"),
        pytest.param(outcome_of(errors.ClockSkewError("x", cloud="c")), 0, 15, 15, id="clock"),
    ],
)
def test_backoff_is_jittered_within_its_ceiling(
    outcome: Outcome, attempt: int, low: float, high: float
) -> None:
    delays = {
        (outcome.retry_at(NOW, attempt, _rng(seed)) - NOW).total_seconds()  # type: ignore[operator]
        for seed in range(50)
    }
    assert low <= min(delays) and max(delays) <= high
    assert len(delays) > 1 or low == high  # jittered, unless fixed


def test_a_retry_after_is_honoured_and_a_hold_has_no_retry_time() -> None:
    throttled = outcome_of(errors.ThrottledError("x", cloud="c"))
    at = throttled.retry_at(NOW, 0, _rng(1), retry_after=120)
    assert at is not None and at - NOW >= datetime.timedelta(seconds=120)
    held = outcome_of(errors.InvalidRequestError("x", cloud="c"))
    assert held.retry_at(NOW, 0, _rng(1)) is None


# -- the planner applies the policy -----------------------------------------------------------

ACCOUNT = "uid-a/1/100"


def refusal(
    error_class: str,
    *,
    seconds_ago: float = 30,
    replicas: int = 3,
    generation: int = 1,
    account: str = ACCOUNT,
    retry_in: float | None = None,
) -> LedgerEntry:
    at = NOW - datetime.timedelta(seconds=seconds_ago)
    return LedgerEntry(
        at=at, field=ServiceField.REPLICAS, kind="scale", target=Target(replicas=replicas),
        succeeded=False, action="ModifyModelService", why=f"replicas 2 -> {replicas}",
        request_id="r-1", error_class=error_class, error="no", generation=generation,
        account=account,
        retry_at=None if retry_in is None else NOW + datetime.timedelta(seconds=retry_in),
    )  # fmt: skip


def success(seconds_ago: float) -> LedgerEntry:
    return LedgerEntry(
        at=NOW - datetime.timedelta(seconds=seconds_ago), field=ServiceField.REPLICAS,
        kind="scale", target=Target(replicas=3),
    )  # fmt: skip


@dataclass
class PolicyCase:
    writes: tuple[LedgerEntry, ...]
    kinds: list[str]
    reason: Reason
    now: datetime.datetime = NOW
    generation: int = 1
    account: str = ACCOUNT
    fields: dict[str, Any] = field(default_factory=lambda: {"replicas": 3})
    failed_write: bool = True
    wake_at: datetime.datetime | None = None


A_YEAR_LATER = NOW + datetime.timedelta(days=365)

POLICY_CASES = {
    "an-invalid-write-is-held": PolicyCase(
        (refusal("CloudInvalidRequest"),), [], Reason.CLOUD_REJECTED
    ),
    "a-hold-does-not-expire": PolicyCase(
        (refusal("CloudInvalidRequest"),), [], Reason.CLOUD_REJECTED, now=A_YEAR_LATER
    ),
    "a-permission-refusal-is-held": PolicyCase(
        (refusal("CloudPermissionDenied"),), [], Reason.PERMISSION_DENIED
    ),
    "an-unsupported-action-is-held": PolicyCase(
        (refusal("CloudUnsupportedAction"),), [], Reason.UNSUPPORTED_BY_CLOUD
    ),
    "a-new-generation-lifts-the-hold": PolicyCase(
        (refusal("CloudInvalidRequest"),),
        ["scale"],
        Reason.CONVERGING,
        generation=2,
        failed_write=False,
    ),
    "a-new-account-fingerprint-lifts-the-hold": PolicyCase(
        (refusal("CloudPermissionDenied"),),
        ["scale"],
        Reason.CONVERGING,
        account="uid-a/1/101",
        failed_write=False,
    ),
    "a-hold-is-on-the-value-refused-not-the-field": PolicyCase(
        (refusal("CloudInvalidRequest", replicas=5),),
        ["scale"],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "a-hold-on-replicas-leaves-the-rate-limit-managed": PolicyCase(
        (refusal("CloudInvalidRequest"),),
        ["set-rate-limit"],
        Reason.CLOUD_REJECTED,
        fields={"replicas": 3, "rateLimit": {"requestsPerSecond": 9, "scope": "PerInstance"}},
    ),
    "a-throttled-write-backs-off-until-its-retry-time": PolicyCase(
        (refusal("CloudThrottled", retry_in=40),),
        [],
        Reason.CONVERGING,
        wake_at=NOW + datetime.timedelta(seconds=40),
    ),
    "a-throttled-write-is-retried-after-its-retry-time": PolicyCase(
        (refusal("CloudThrottled", retry_in=40),),
        ["scale"],
        Reason.CONVERGING,
        now=NOW + datetime.timedelta(seconds=41),
        failed_write=False,
    ),
    # The observation started 5 s before NOW: a refusal 2 s ago is newer than it.
    "an-unanswered-write-waits-past-its-retry-time-for-an-observation-after-it": PolicyCase(
        (refusal("CloudNoAnswer", seconds_ago=2, retry_in=-1),),
        [],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "an-unanswered-write-observed-before-its-retry-time-waits-for-another-observation": PolicyCase(
        (refusal("CloudNoAnswer", seconds_ago=8, retry_in=-1),),
        [],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "an-unanswered-write-is-retried-once-observed-after-its-retry-time": PolicyCase(
        (refusal("CloudNoAnswer", seconds_ago=8, retry_in=-6),),
        ["scale"],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "a-malformed-answer-may-have-applied-too": PolicyCase(
        (refusal("CloudMalformedResponse", seconds_ago=2, retry_in=-1),),
        [],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "a-refusal-the-cloud-answered-is-retried-after-its-retry-time-alone": PolicyCase(
        (refusal("CloudUnavailable", seconds_ago=2, retry_in=-1),),
        ["scale"],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "an-auth-refusal-waits-its-fixed-delay": PolicyCase(
        (refusal("CloudAuthFailed", retry_in=5),),
        [],
        Reason.CONVERGING,
        wake_at=NOW + datetime.timedelta(seconds=5),
    ),
    "a-success-after-a-refusal-ends-it": PolicyCase(
        (refusal("CloudThrottled", seconds_ago=600, retry_in=40), success(60)),
        ["scale"],
        Reason.CONVERGING,
        failed_write=False,
    ),
    "a-refusal-from-before-the-ledger-backs-off-but-is-not-reported": PolicyCase(
        (
            ledger.legacy_entry(
                {
                    "time": (NOW - datetime.timedelta(seconds=2)).isoformat(),
                    "change": "scale: replicas 2 -> 3",
                    "result": "Failed",
                }
            ),
        ),  # type: ignore[arg-type]
        [],
        Reason.CONVERGING,
        failed_write=False,
        wake_at=NOW + datetime.timedelta(seconds=13),
    ),
}


@pytest.mark.parametrize("case", POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_the_planner_applies_the_policy(case: PolicyCase) -> None:
    result = plan(
        PlanInput(
            spec(**case.fields),
            observed(replicas=2),
            OBSERVED_AT,
            case.now,
            recent_writes=case.writes,
            generation=case.generation,
            account=case.account,
        )
    )
    assert [c.kind for c in result.changes] == case.kinds
    assert result.reason is case.reason
    assert (result.failed_write is not None) == case.failed_write
    assert result.wake_at == case.wake_at
    if case.reason in (
        Reason.CLOUD_REJECTED, Reason.PERMISSION_DENIED, Reason.UNSUPPORTED_BY_CLOUD
    ):  # fmt: skip
        assert not result.ready and not result.waiting  # held: not Converging
        assert "not sent again until the spec, the CloudAccount or its Secret changes" in (
            result.message
        )


# -- end to end through the reconciler, without Kubernetes -------------------------------------


def _stored(kube: RecordingKube) -> dict[str, Any]:
    """The status after every merge patch (RFC 7386) the reconcilers sent."""

    def merge(old: Any, patch: Any) -> Any:
        if not isinstance(patch, dict) or not isinstance(old, dict):
            return patch
        merged = dict(old)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = merge(old.get(key), value)
        return merged

    status: dict[str, Any] = {}
    for _, patch in kube.patches:
        status = merge(status, patch)
    return status


class RefusingProvider:
    """Refuses every write with `error`, until `error` is set to None."""

    def __init__(self, error: errors.CloudError | None) -> None:
        self.error = error
        self.applied: list[Change] = []

    async def apply(self, account: Account, change: Change, *, observed: ObservedService) -> Any:
        self.applied.append(change)
        if self.error is not None:
            raise self.error
        return ApplyResult(change=change, call="ModifyModelService", request_id="req-2")


def _observed_runtime(
    kube: RecordingKube,
    provider: Any,
    fence: Any = None,
) -> tuple[Runtime, dict[str, Any]]:
    """A runtime whose account observed ms-1 at 1 replica, and a service asking for 2."""
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST, fence=fence)  # type: ignore[arg-type]
    _observe(runtime, provider, replicas=1)
    runtime.observer(("ns", "acct")).snapshot.account = ACCOUNT
    body = _service("chat", "2026-05-10T08:00:00Z", replicas=2)
    runtime.claims.update(body)
    return runtime, body


async def _reconcile_times(reconciler: ServiceReconciler, times: int) -> None:
    for _ in range(times):
        await reconciler.reconcile()


def test_a_held_write_is_sent_once_with_one_warning_and_survives_a_restart() -> None:
    kube = RecordingKube()
    invalid = errors.InvalidRequestError(
        "Replicas out of range", cloud="tencent", action="ModifyModelService",
        code="InvalidParameterValue", request_id="req-1",
    )  # fmt: skip
    provider = RefusingProvider(invalid)
    runtime, body = _observed_runtime(kube, provider)

    first = ServiceReconciler(runtime, body)
    asyncio.run(_reconcile_times(first, 5))
    assert len(provider.applied) == 1
    warnings = [e for e in kube.events if e[1] == "Warning"]
    assert [(e[2]) for e in warnings] == ["CloudRejected"]
    assert "not sent again until" in warnings[0][3]
    patch = _stored(kube)
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CloudRejected")
    (entry,) = patch["journal"]
    assert (entry["errorClass"], entry["generation"], entry["account"]) == (
        "CloudInvalidRequest",
        1,
        ACCOUNT,
    )
    assert "retryAt" not in entry

    # A restarted operator reads the hold from status and does not send it again.
    body["status"] = patch
    restarted = ServiceReconciler(runtime, body)
    asyncio.run(_reconcile_times(restarted, 3))
    assert len(provider.applied) == 1
    assert len([e for e in kube.events if e[1] == "Warning"]) == 1

    # A new generation lifts the hold at once.
    provider.error = None
    body["metadata"]["generation"] = 2
    asyncio.run(_reconcile_times(restarted, 1))
    assert len(provider.applied) == 2


class SlowProvider:
    """Answers every write after `seconds`, having applied it at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.applied: list[Change] = []

    async def apply(self, account: Account, change: Change, *, observed: ObservedService) -> Any:
        self.applied.append(change)
        await asyncio.sleep(self.seconds)
        return ApplyResult(change=change, call="ModifyModelService", request_id="req-late")


@dataclass
class ClosingFence:
    """Sharding's fence: writes may go out for a while, but must be answered within 0.2 s."""

    opened: float = field(default_factory=time.monotonic)

    def write_window(self, account: tuple[str, str]) -> tuple[float, float] | None:
        return self.opened + 60, time.monotonic() + 0.2


def test_a_write_unanswered_before_the_fence_closes_backs_off_instead_of_going_out_again() -> None:
    """The cloud may have applied a write whose answer came too late (sharding's answer
    deadline): it is journalled as a refusal that backs off, so the next passes, planned from
    an observation that predates it, do not send it again."""
    kube = RecordingKube()
    provider = SlowProvider(seconds=2.0)
    runtime, body = _observed_runtime(kube, provider, fence=ClosingFence())
    asyncio.run(_reconcile_times(ServiceReconciler(runtime, body), 3))
    assert len(provider.applied) == 1
    (entry,) = _stored(kube)["journal"]
    assert (entry["result"], entry["errorClass"]) == ("Failed", "CloudNoAnswer")
    assert "may have applied it" in entry["error"] and entry["retryAt"]
