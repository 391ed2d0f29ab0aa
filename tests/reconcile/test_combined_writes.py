"""One write that changes several fields (issue 19 item 1): the planner combines the fields
one call can carry (`Capabilities.one_call`; TI-ONE's PartialConfig takes the RPS limit and
the scheduled stop together), and the ledger and the duplicate-write guard treat that write
as a write of each of its fields. Table-driven; each case says why it exists in its id."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudinfer.api.conditions import Reason
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.model import (
    Capabilities,
    ClearRateLimit,
    Cloud,
    Combined,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    combine,
)
from cloudinfer.cloud.tencent.parse import CAPABILITIES as TENCENT
from cloudinfer.cloud.tencent.parse import FALLBACK_CAPABILITIES as TENCENT_FALLBACK
from cloudinfer.reconcile import ledger
from cloudinfer.reconcile.ledger import LedgerEntry, Target
from cloudinfer.reconcile.planner import PlanInput, one_call_per_group, plan

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
OBSERVED_AT = NOW - datetime.timedelta(seconds=5)
STOP_AT = NOW + datetime.timedelta(days=2)
OTHER_STOP_AT = NOW + datetime.timedelta(days=3)
NO_ONE_CALL = TENCENT.model_copy(update={"one_call": ()})
RATE = {"requestsPerSecond": 22, "scope": "PerInstance"}


def spec(**fields: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate(
        {"accountRef": {"name": "acct"}, "serviceId": "svc-1", **fields}
    )


def observed(
    *,
    replicas: int = 2,
    rps: float | None = None,
    scheduled_stop: datetime.datetime | None = None,
    phase: Phase = Phase.RUNNING,
    caps: Capabilities = TENCENT,
) -> ObservedService:
    return ObservedService(
        cloud=Cloud.TENCENT,
        service_id="svc-1",
        replicas=Replicas(desired=replicas, ready=replicas),
        rate_limit=RateLimitSetting(rps=rps, scope=RateLimitScope.PER_INSTANCE) if rps else None,
        scheduled_stop=scheduled_stop,
        phase=phase,
        raw_status=phase.value,
        capabilities=caps,
    )


def both_written(
    seconds_ago: float,
    *,
    rps: float = 22,
    stop_at: datetime.datetime = STOP_AT,
    error_class: str | None = None,
    retry_in: float | None = None,
    generation: int = 0,
) -> LedgerEntry:
    """One PartialConfig that set the RPS limit and the schedule (refused if error_class)."""
    at = NOW - datetime.timedelta(seconds=seconds_ago)
    return LedgerEntry(
        at=at, field=ServiceField.RATE_LIMIT, kind="set-rate-limit", also=("set-schedule",),
        target=Target(requests_per_second=rps, scope="PerInstance", stop_at=stop_at),
        succeeded=error_class is None, error_class=error_class,
        retry_at=at + datetime.timedelta(seconds=retry_in) if retry_in is not None else None,
        generation=generation,
    )  # fmt: skip


def one_written(target: ServiceField, kind: str, seconds_ago: float) -> LedgerEntry:
    return LedgerEntry(at=NOW - datetime.timedelta(seconds=seconds_ago), field=target, kind=kind)


def _shape(change: Any) -> Any:
    """A write as its kind, or the kinds of its parts for a combined one."""
    if isinstance(change, Combined):
        return tuple(part.kind for part in change.parts)
    return change.kind


@dataclass
class Case:
    spec: InferenceServiceSpec
    observed: ObservedService
    writes: list[Any]
    """Each write: a kind, or a tuple of the kinds one combined write carries."""
    reason: Reason = Reason.CONVERGING
    journal: tuple[LedgerEntry, ...] = ()
    generation: int = 0
    check: dict[str, Any] = field(default_factory=dict)


BOTH = spec(rateLimit=RATE, stopSchedule={"stopAt": STOP_AT.isoformat()})
ALL_THREE = spec(replicas=3, rateLimit=RATE, stopSchedule={"stopAt": STOP_AT.isoformat()})

CASES = {
    "rate-limit-and-schedule-differ-one-partial-config": Case(
        BOTH, observed(), [("set-rate-limit", "set-schedule")]
    ),
    "clearing-both-is-one-call-too": Case(
        spec(rateLimit={"unlimited": True}, stopSchedule={}),
        observed(rps=10, scheduled_stop=STOP_AT),
        [("clear-rate-limit", "clear-schedule")],
    ),
    "a-set-and-a-clear-share-the-call": Case(
        spec(rateLimit={"unlimited": True}, stopSchedule={"stopAt": STOP_AT.isoformat()}),
        observed(rps=10),
        [("clear-rate-limit", "set-schedule")],
    ),
    "only-the-rate-limit-differs-a-single-field-write": Case(
        BOTH, observed(scheduled_stop=STOP_AT), ["set-rate-limit"]
    ),
    "replicas-stay-their-own-call-scale-then-partial-config": Case(
        ALL_THREE, observed(), ["scale", ("set-rate-limit", "set-schedule")]
    ),
    "a-cloud-without-one-call-groups-gets-two-writes": Case(
        BOTH, observed(caps=NO_ONE_CALL), ["set-rate-limit", "set-schedule"]
    ),
    "the-fallback-call-still-carries-both": Case(
        BOTH, observed(caps=TENCENT_FALLBACK), [("set-rate-limit", "set-schedule")]
    ),
    "a-combined-write-not-yet-observed-holds-both-fields": Case(
        BOTH, observed(), [], journal=(both_written(1),), check={"waiting": True}
    ),
    "a-combined-write-observed-and-still-different-is-sent-again-once": Case(
        BOTH, observed(), [("set-rate-limit", "set-schedule")], journal=(both_written(30),)
    ),
    "a-rate-limit-in-flight-leaves-the-schedule-to-go-alone": Case(
        BOTH,
        observed(),
        ["set-schedule"],
        journal=(one_written(ServiceField.RATE_LIMIT, "set-rate-limit", 1),),
        check={"waiting": True},
    ),
    "a-combined-refusal-held-holds-each-field": Case(
        BOTH,
        observed(),
        [],
        reason=Reason.CLOUD_REJECTED,
        journal=(both_written(30, error_class="CloudInvalidRequest"),),
        check={"blocked": [ServiceField.RATE_LIMIT, ServiceField.SCHEDULE]},
    ),
    "a-new-generation-lifts-the-hold-and-sends-both-again": Case(
        BOTH,
        observed(),
        [("set-rate-limit", "set-schedule")],
        journal=(both_written(30, error_class="CloudInvalidRequest"),),
        generation=1,
    ),
    "a-hold-of-another-value-does-not-hold-this-one": Case(
        BOTH,
        observed(),
        [("set-rate-limit", "set-schedule")],
        journal=(both_written(30, rps=99, error_class="CloudInvalidRequest"),),
        check={"blocked": [ServiceField.SCHEDULE], "changes_despite_block": True},
    ),
    "a-combined-refusal-backing-off-waits-for-both": Case(
        BOTH,
        observed(),
        [],
        reason=Reason.CONVERGING,
        journal=(both_written(5, error_class="CloudUnavailable", retry_in=15),),
        check={"waiting": True, "wake_at": NOW + datetime.timedelta(seconds=10)},
    ),
    "observe-only-proposes-the-combined-write": Case(
        spec(
            rateLimit=RATE,
            stopSchedule={"stopAt": STOP_AT.isoformat()},
            policy={"mode": "ObserveOnly"},
        ),
        observed(),
        [],
        reason=Reason.OBSERVE_ONLY,
        check={"proposed": [("set-rate-limit", "set-schedule")]},
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_plan_combines_what_one_call_can_carry(case: Case) -> None:
    result = plan(
        PlanInput(
            spec=case.spec,
            observed=case.observed,
            observed_at=OBSERVED_AT,
            now=NOW,
            recent_writes=case.journal,
            generation=case.generation,
        )
    )
    if case.check.get("changes_despite_block"):
        # The schedule's last write is the refused call (same stop time): held. The RPS limit
        # asked for now differs from the refused one: sent, alone.
        assert [_shape(c) for c in result.changes] == ["set-rate-limit"]
        assert [b.field for b in result.blocked] == case.check["blocked"]
        return
    assert [_shape(c) for c in result.changes] == case.writes, result
    assert result.reason is case.reason, result.message
    if "waiting" in case.check:
        assert result.waiting is case.check["waiting"]
    if "blocked" in case.check:
        assert [b.field for b in result.blocked] == case.check["blocked"]
    if "proposed" in case.check:
        assert [_shape(c) for c in result.proposed] == case.check["proposed"]
    if "wake_at" in case.check:
        assert result.wake_at == case.check["wake_at"]


def test_a_combined_write_says_why_for_each_field() -> None:
    result = plan(PlanInput(BOTH, observed(), OBSERVED_AT, NOW))
    (write,) = result.changes
    assert isinstance(write, Combined)
    assert write.fields == (ServiceField.RATE_LIMIT, ServiceField.SCHEDULE)
    assert write.reason == (
        f"rate limit unlimited -> 22/s PerInstance; scheduled stop -> {STOP_AT.isoformat()}"
    )


def test_one_call_per_group_keeps_the_order_of_the_other_writes() -> None:
    rate = SetRateLimit(service_id="s", rps=5, scope=RateLimitScope.PER_INSTANCE)
    schedule = SetSchedule(service_id="s", stop_at=STOP_AT)
    assert one_call_per_group((rate,), TENCENT) == (rate,)
    assert one_call_per_group((schedule, rate), TENCENT) == (combine((schedule, rate)),)
    assert one_call_per_group((rate, schedule), NO_ONE_CALL) == (rate, schedule)


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        (
            (
                SetRateLimit(service_id="a", rps=5, scope=RateLimitScope.PER_INSTANCE),
                SetSchedule(service_id="b", stop_at=STOP_AT),
            ),
            "one service",
        ),
        ((ClearRateLimit(service_id="a"), ClearRateLimit(service_id="a")), "each field once"),
    ],
    ids=["two-services", "one-field-twice"],
)
def test_combine_refuses_what_no_call_can_be(parts: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        combine(parts)


# -- the ledger ---------------------------------------------------------------------------------

COMBINED = combine(
    (
        SetRateLimit(service_id="s", rps=22, scope=RateLimitScope.PER_INSTANCE, reason="r"),
        SetSchedule(service_id="s", stop_at=STOP_AT, reason="t"),
    )
)


def test_a_combined_write_is_one_entry_of_each_field_and_round_trips() -> None:
    entry = ledger.entry_of(COMBINED, at=NOW, action="ModifyModelServicePartialConfig", why="r; t")
    assert entry.fields == (ServiceField.RATE_LIMIT, ServiceField.SCHEDULE)
    assert entry.kinds == ("set-rate-limit", "set-schedule")
    assert entry.target == Target(requests_per_second=22, scope="PerInstance", stop_at=STOP_AT)
    raw = ledger.to_status(entry)
    assert (raw["field"], raw["kind"], raw["kinds"]) == (
        "rateLimit",
        "set-rate-limit",
        ["set-rate-limit", "set-schedule"],
    )
    assert raw["change"] == "set-rate-limit + set-schedule: r; t"
    assert ledger.from_status(raw) == entry
    assert ledger.to_status(ledger.from_status(raw) or entry) == raw


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (
            {"time": "2026-11-23T11:59:00.000Z", "action": "ModifyModelServicePartialConfig",
             "change": "set-schedule: x", "result": "Succeeded", "field": "schedule",
             "kind": "set-schedule"},
            (ServiceField.SCHEDULE,),
        ),
        (
            {"time": "2026-11-23T11:59:00.000Z", "action": "ModifyModelServicePartialConfig",
             "change": "set-rate-limit: 1 -> 2", "result": "Succeeded"},
            (ServiceField.RATE_LIMIT,),
        ),
        (
            {"time": "2026-11-23T11:59:00.000Z", "action": "x", "change": "y",
             "result": "Succeeded", "field": "rateLimit", "kind": "set-rate-limit",
             "kinds": ["set-rate-limit", "no-such-kind"]},
            None,
        ),
        (
            {"time": "2026-11-23T11:59:00.000Z", "action": "x", "change": "y",
             "result": "Succeeded", "field": "rateLimit", "kind": "set-rate-limit",
             "kinds": ["set-schedule", "set-rate-limit"]},
            None,
        ),
    ],
    ids=["a-typed-single-field-entry", "a-pre-ledger-entry", "an-unknown-kind-in-kinds",
         "kinds-that-disagree-with-kind"],
)  # fmt: skip
def test_older_journals_still_read_as_one_field(
    raw: dict[str, Any], fields: tuple[ServiceField, ...] | None
) -> None:
    entry = ledger.from_status(raw)
    assert (entry.fields if entry is not None else None) == fields


def test_the_bound_keeps_a_combined_entry_that_is_the_last_write_of_a_field() -> None:
    combined = ledger.entry_of(COMBINED, at=NOW - datetime.timedelta(minutes=30))
    rate_later = one_written(ServiceField.RATE_LIMIT, "set-rate-limit", 60)
    scales = [one_written(ServiceField.REPLICAS, "scale", 50 - i) for i in range(20)]
    kept = ledger.bounded([combined, rate_later, *scales])
    assert combined in kept, "still the last write of the schedule"
    assert rate_later in kept


def test_refusals_in_a_row_count_a_combined_refusal_for_each_field() -> None:
    refused = ledger.entry_of(COMBINED, at=NOW, succeeded=False, error_class="CloudUnavailable")
    entries = [one_written(ServiceField.SCHEDULE, "set-schedule", 90), refused, refused]
    assert ledger.refusals_in_a_row(entries, ServiceField.RATE_LIMIT) == 2
    assert ledger.refusals_in_a_row(entries, ServiceField.SCHEDULE) == 2
    assert ledger.refusals_in_a_row(entries, ServiceField.REPLICAS) == 0
