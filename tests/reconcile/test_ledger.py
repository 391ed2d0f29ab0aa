"""The write ledger (status.journal): typed entries round-trip through status into the
planner, the human text is never read back, and journals of earlier versions still guard."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
from test_claim_rule import RecordingKube, RecordingProvider, _observe, _service
from test_planner import NOW, OBSERVED_AT, observed, spec

from cloudinfer.api.inferenceservice import JOURNAL_MAX_ENTRIES, InferenceServiceStatus
from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.cloud.model import (
    Change,
    ClearRateLimit,
    ClearSchedule,
    Phase,
    RateLimitScope,
    Resume,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    Stop,
)
from cloudinfer.reconcile import ledger
from cloudinfer.reconcile.ledger import LedgerEntry, Target
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.planner import PlanInput, plan
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

AT = datetime.datetime(2026, 11, 23, 11, 59, 58, 123000, tzinfo=datetime.UTC)
STOP_AT = datetime.datetime(2026, 11, 23, 20, 0, 0, 250000, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("change", "target"),
    [
        pytest.param(Scale(service_id="s", replicas=3, reason="replicas 2 -> 3"),
                     Target(replicas=3), id="scale"),
        pytest.param(SetRateLimit(service_id="s", rps=2.5, scope=RateLimitScope.PER_INSTANCE),
                     Target(requests_per_second=2.5, scope="PerInstance"), id="set-rate-limit"),
        pytest.param(ClearRateLimit(service_id="s"), Target(), id="clear-rate-limit"),
        pytest.param(SetSchedule(service_id="s", stop_at=STOP_AT + datetime.timedelta(
            microseconds=456)), Target(stop_at=STOP_AT), id="set-schedule-to-the-millisecond"),
        pytest.param(ClearSchedule(service_id="s"), Target(), id="clear-schedule"),
        pytest.param(Stop(service_id="s", reason="Suspended: stop requested"), Target(),
                     id="stop"),
        pytest.param(Resume(service_id="s"), Target(), id="resume"),
    ],
)  # fmt: skip
def test_every_kind_of_entry_round_trips_through_status(change: Change, target: Target) -> None:
    entry = LedgerEntry(
        at=AT, field=change.field, kind=change.kind, target=ledger.target_of(change),
        succeeded=False, action="ModifyModelService", why=change.reason, request_id="r-1",
        error_class="CloudInvalidRequest", error="InvalidParameterValue: no", generation=4,
        account="uid-1/2/8812", retry_at=AT + datetime.timedelta(seconds=15),
    )  # fmt: skip
    assert entry.target == target
    stored = json.loads(json.dumps(ledger.to_status(entry)))  # as the apiserver hands it back
    InferenceServiceStatus.model_validate({"journal": [stored]})  # fits the CRD's model
    assert ledger.from_status(stored) == entry
    assert ledger.to_status(ledger.from_status(stored)) == stored  # steady state: no patch


def test_the_change_text_is_for_people_and_never_read_back() -> None:
    """A typed entry whose text says something else is read by its fields."""
    stored = {
        "time": "2026-11-23T11:59:58.123Z", "action": "ModifyModelService",
        "change": "set-schedule: scheduled stop -> 2026-11-23T11:00:00+00:00",
        "result": "Succeeded", "field": "replicas", "kind": "scale", "target": {"replicas": 3},
    }  # fmt: skip
    entry = ledger.from_status(stored)
    assert entry is not None
    assert (entry.field, entry.kind, entry.target) == (
        ServiceField.REPLICAS,
        "scale",
        Target(replicas=3),
    )


def test_a_typed_entry_guards_the_planner_after_a_trip_through_status() -> None:
    """Executor entry -> status JSON -> planner: a write not observed yet is not repeated,
    and a stop the operator scheduled (read from the typed target) is undone when moved."""
    scale = LedgerEntry(
        at=NOW - datetime.timedelta(seconds=1), field=ServiceField.REPLICAS, kind="scale",
        target=Target(replicas=3), action="ModifyModelService", why="replicas 2 -> 3",
    )  # fmt: skip
    journal = ledger.read([json.loads(json.dumps(ledger.to_status(scale)))])
    guarded = plan(
        PlanInput(spec(replicas=3), observed(replicas=2), OBSERVED_AT, NOW, recent_writes=journal)
    )
    assert guarded.changes == () and guarded.waiting

    fired = NOW - datetime.timedelta(seconds=60)
    schedule = LedgerEntry(
        at=NOW - datetime.timedelta(seconds=600), field=ServiceField.SCHEDULE,
        kind="set-schedule", target=Target(stop_at=fired), action="ModifyModelService",
    )  # fmt: skip
    later = (NOW + datetime.timedelta(hours=1)).isoformat()
    journal = ledger.read([json.loads(json.dumps(ledger.to_status(schedule)))])
    resumed = plan(
        PlanInput(
            spec(stopSchedule={"stopAt": later}),
            observed(phase=Phase.STOPPED, replicas=0),
            OBSERVED_AT,
            NOW,
            recent_writes=journal,
        )
    )
    assert [c.kind for c in resumed.changes] == ["resume"]


# Entries as operator versions before the typed ledger wrote them.
LEGACY_SCALE = {
    "time": "2026-11-23T11:59:59.500Z", "action": "ModifyModelService",
    "change": "scale: replicas 2 -> 3", "requestId": "r-9", "result": "Succeeded",
}  # fmt: skip
LEGACY_SCHEDULE = {
    "time": "2026-11-23T11:50:00.000Z", "action": "ModifyModelServicePartialConfig",
    "change": "set-schedule: scheduled stop -> 2026-11-23T20:00:00+00:00", "result": "Succeeded",
}  # fmt: skip
LEGACY_REFUSAL = {
    "time": "2026-11-23T11:59:50.000Z", "action": "UpdateServiceByProperty",
    "change": "set-rate-limit: rate limit unlimited -> 5/s PerService", "result": "Failed",
}  # fmt: skip


def test_a_legacy_journal_is_read_once_and_written_back_typed() -> None:
    scale, schedule, refusal = ledger.read(
        [LEGACY_SCALE, LEGACY_SCHEDULE, LEGACY_REFUSAL, {"time": "x", "change": "?"}]
    )
    assert (scale.field, scale.kind, scale.succeeded, scale.request_id) == (
        ServiceField.REPLICAS,
        "scale",
        True,
        "r-9",
    )
    assert scale.at == datetime.datetime(2026, 11, 23, 11, 59, 59, 500000, tzinfo=datetime.UTC)
    assert schedule.target.stop_at == datetime.datetime(2026, 11, 23, 20, tzinfo=datetime.UTC)
    assert (refusal.field, refusal.succeeded) == (ServiceField.RATE_LIMIT, False)
    # The old fixed backoff: retried 15 s after the refusal, as the old version would have.
    assert refusal.retry_at == refusal.at + datetime.timedelta(seconds=15)
    rewritten = ledger.to_status(scale)
    assert rewritten["kind"] == "scale" and rewritten["field"] == "replicas"
    assert rewritten["change"] == LEGACY_SCALE["change"]
    assert ledger.from_status(rewritten) == scale  # read typed from now on


def test_the_ledger_keeps_its_bound() -> None:
    entries = [
        LedgerEntry(at=AT + datetime.timedelta(seconds=i), field=ServiceField.STOP, kind="stop")
        for i in range(JOURNAL_MAX_ENTRIES + 3)
    ]
    assert ledger.bounded(entries) == tuple(entries[3:])


def test_an_upgraded_operator_does_not_repeat_a_write_its_predecessor_journaled() -> None:
    """A resource whose status holds an old-form journal: the scale it records is in flight
    (the observation predates it), so no second scale; the status is written back typed."""
    kube = RecordingKube()
    runtime = Runtime(kube, Metrics(), allow_list=DEFAULT_ALLOW_LIST)
    provider = RecordingProvider()
    _observe(runtime, provider, replicas=1)
    observer = runtime.observer(("ns", "acct"))
    observer.snapshot.observed_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        seconds=30
    )
    body = _service("chat", "2026-05-10T08:00:00Z", replicas=2)
    written = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    body["status"] = {
        "journal": [{**LEGACY_SCALE, "change": "scale: replicas 1 -> 2",
                     "time": ledger.precise_timestamp(written)}],
    }  # fmt: skip
    reconciler = ServiceReconciler(runtime, body)
    runtime.claims.update(body)
    asyncio.run(reconciler.reconcile())
    assert provider.applied == []
    _, patch = kube.patches[-1]
    (entry,) = patch["journal"]
    assert (entry["kind"], entry["field"], entry["change"]) == (
        "scale",
        "replicas",
        "scale: replicas 1 -> 2",
    )


def test_the_bound_keeps_the_last_entry_of_each_field() -> None:
    """A hold on replicas outlives ten later writes to other fields."""
    hold = LedgerEntry(
        at=AT, field=ServiceField.REPLICAS, kind="scale", target=Target(replicas=9),
        succeeded=False, error_class="CloudInvalidRequest",
    )  # fmt: skip
    later = [
        LedgerEntry(at=AT + datetime.timedelta(seconds=i), field=ServiceField.STOP, kind="stop")
        for i in range(1, JOURNAL_MAX_ENTRIES + 5)
    ]
    kept = ledger.bounded([hold, *later])
    assert len(kept) == JOURNAL_MAX_ENTRIES
    assert kept == (hold, *later[-(JOURNAL_MAX_ENTRIES - 1) :])
