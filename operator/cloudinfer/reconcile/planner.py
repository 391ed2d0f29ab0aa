"""The planner: a pure function from (desired spec, observation, policy, now) to a plan.

No I/O and no clock of its own, so every decision is table-tested in tests/reconcile. The
plan says which minimal changes to send, which fields differ, which cannot be managed on
this cloud and why, and what the conditions should say. docs/architecture.md explains the
rules; the short version:

- Only fields present in the spec are managed (`replicas`, `rateLimit`, `stopSchedule`).
- Nothing is sent while the cloud is transitioning, while the platform holds the service
  stopped, or while one of our own writes has not been observed yet (no duplicate writes).
- The run state: `suspend`, an open stop window or a passed `stopAt` mean Stopped; the
  operator resumes only services it stopped itself (or that a window keeps in rhythm).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cloudinfer.api.conditions import Reason
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.model import (
    SCHEDULE_TOLERANCE,
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    ObservedService,
    Phase,
    RateLimitScope,
    Resume,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    Stop,
    Support,
)
from cloudinfer.reconcile.windows import InvalidWindowError, Transition, evaluate

# What each cloud's RPS limit applies to (clouds.md §5); converting scopes would silently
# change meaning on every scale, so a mismatch is reported instead.
CLOUD_RATE_LIMIT_SCOPE = {
    Cloud.TENCENT: RateLimitScope.PER_INSTANCE,
    Cloud.HUAWEI: RateLimitScope.PER_SERVICE,
    Cloud.BAIDU: RateLimitScope.PER_INSTANCE,
}
# A write the cloud has not reflected after this long (in observations taken after it) may
# be sent again; before that it is in flight.
IN_FLIGHT_GRACE = datetime.timedelta(seconds=60)
# After a failed write, the same field is not tried again for this long: a refusal must not
# turn into a hot loop (each attempt changes status, which wakes the reconciler again).
FAILED_WRITE_BACKOFF = datetime.timedelta(seconds=15)
# A native one-shot stop is the cloud's to perform; the operator steps in only if the cloud
# has not stopped the service this long after the scheduled time.
NATIVE_STOP_GRACE = datetime.timedelta(seconds=60)


@dataclass(frozen=True)
class RecentWrite:
    """One write the operator made (from status.journal), used to avoid duplicates."""

    field: ServiceField
    at: datetime.datetime
    succeeded: bool = True
    stop_at: datetime.datetime | None = None
    """For a schedule write: the stop time it set."""


@dataclass(frozen=True)
class PlanInput:
    spec: InferenceServiceSpec
    observed: ObservedService
    observed_at: datetime.datetime
    """When the observation was read from the cloud."""
    now: datetime.datetime
    recent_writes: tuple[RecentWrite, ...] = ()
    paused: bool = False


@dataclass(frozen=True)
class FieldDrift:
    field: ServiceField
    desired: str
    observed: str


@dataclass(frozen=True)
class Blocked:
    field: ServiceField
    reason: Reason
    message: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    """What to send now (empty in ObserveOnly, when paused, or while waiting)."""
    proposed: tuple[Change, ...]
    """What Enforce mode would send; reported in ObserveOnly and while paused."""
    drift: tuple[FieldDrift, ...]
    blocked: tuple[Blocked, ...]
    waiting: bool
    """A change is in flight or the cloud is transitioning."""
    ready: bool
    reason: Reason
    message: str
    next_transition: Transition | None = None
    wake_at: datetime.datetime | None = None
    """Re-plan at this instant even if nothing else happens (a window edge, an emulated stop)."""
    invalid: tuple[str, ...] = field(default=())


def _fmt_rate(rps: float | None, scope: RateLimitScope | None) -> str:
    if rps is None:
        return "unlimited"
    return f"{rps:g}/s {scope.value if scope else ''}".strip()


def backoff_until(inputs: PlanInput, target: ServiceField) -> datetime.datetime | None:
    """When a failed write to `target` may be retried, if that is still in the future."""
    failed = [w.at for w in inputs.recent_writes if w.field is target and not w.succeeded]
    if not failed:
        return None
    retry_at = max(failed) + FAILED_WRITE_BACKOFF
    return retry_at if retry_at > inputs.now else None


def _is_in_flight(inputs: PlanInput, target: ServiceField) -> bool:
    if backoff_until(inputs, target) is not None:
        return True
    for write in inputs.recent_writes:
        if write.field is not target or not write.succeeded:
            continue
        if write.at >= inputs.observed_at:
            return True  # not observed yet
        if inputs.now - write.at < IN_FLIGHT_GRACE and inputs.observed.phase is Phase.TRANSITIONING:
            return True
    return False


def _operator_stopped_it(inputs: PlanInput) -> bool:
    """Did our own latest run-state write stop the service?"""
    run_writes = [
        w
        for w in inputs.recent_writes
        if w.field in (ServiceField.STOP, ServiceField.RESUME) and w.succeeded
    ]
    return bool(run_writes) and max(run_writes, key=lambda w: w.at).field is ServiceField.STOP


@dataclass
class _Draft:
    changes: list[Change] = field(default_factory=list)
    drift: list[FieldDrift] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    waiting: bool = False
    wake_at: list[datetime.datetime] = field(default_factory=list)

    def unsupported(self, target: ServiceField, support: Support, what: str, why: str) -> None:
        reason = Reason.UNSUPPORTED_BY_CLOUD
        self.blocked.append(Blocked(target, reason, f"{what} is {support.value} here: {why}"))


def _manageable(caps: Capabilities, target: ServiceField) -> bool:
    return caps.support(target) in (Support.NATIVE, Support.EMULATED)


def _note(caps: Capabilities, target: ServiceField, default: str) -> str:
    return caps.notes.get(target, default)


def plan(inputs: PlanInput) -> Plan:  # noqa: PLR0912, PLR0915 - one decision table
    """Decide what to do about one service. Pure: same inputs, same plan."""
    spec, observed, now = inputs.spec, inputs.observed, inputs.now
    caps = observed.capabilities
    sid = observed.service_id
    draft = _Draft()

    # ---- desired run state ------------------------------------------------------------------
    schedule = spec.stop_schedule
    window_state = None
    try:
        if schedule is not None and schedule.windows:
            window_state = evaluate(list(schedule.windows), schedule.time_zone, now)
    except InvalidWindowError as err:
        return _invalid(inputs, str(err))
    stop_at = schedule.stop_at if schedule is not None else None
    stop_at_native = _manageable(caps, ServiceField.SCHEDULE) and (caps.schedule is Support.NATIVE)
    stop_at_passed = stop_at is not None and stop_at <= now
    want_stopped = spec.suspend or bool(window_state and window_state.inside) or stop_at_passed
    # The cloud performs a native stopAt itself (maybe a few seconds late): don't race it.
    cloud_stops_soon = (
        stop_at is not None
        and stop_at_passed
        and stop_at_native
        and not spec.suspend
        and not (window_state and window_state.inside)
        and now - stop_at < NATIVE_STOP_GRACE
    )
    if cloud_stops_soon and stop_at is not None:
        draft.wake_at.append(stop_at + NATIVE_STOP_GRACE)
    stop_reason = (
        Reason.SUSPENDED if spec.suspend else Reason.SCHEDULED_STOP if want_stopped else None
    )
    if window_state and window_state.next_transition:
        draft.wake_at.append(window_state.next_transition.at)
    if stop_at is not None and not stop_at_passed:
        draft.wake_at.append(stop_at)

    transitioning = observed.phase is Phase.TRANSITIONING
    if transitioning:
        draft.waiting = True

    is_stopped = observed.phase is Phase.STOPPED
    run_state_change: Change | None = None
    if observed.platform_stop:
        draft.blocked.append(
            Blocked(
                ServiceField.RESUME,
                Reason.PLATFORM_STOPPED,
                f"the platform stopped the service ({observed.platform_stop}); resolve it in "
                "the cloud console, the operator will not restart it",
            )
        )
    elif want_stopped and not is_stopped and cloud_stops_soon:
        draft.waiting = True
    elif want_stopped and not is_stopped and not transitioning:
        if _manageable(caps, ServiceField.STOP):
            run_state_change = Stop(service_id=sid, reason=f"{stop_reason}: stop requested")
        else:
            draft.unsupported(
                ServiceField.STOP,
                caps.stop,
                "stopping",
                _note(caps, ServiceField.STOP, "the cloud has no stop action"),
            )
    elif not want_stopped and is_stopped:
        rhythm = window_state is not None  # windows own the run state
        # A native one-shot stop the operator scheduled is the operator's stop too: moving
        # stopAt into the future (or removing it) starts the service again.
        scheduled_by_us = schedule is not None and any(
            w.field is ServiceField.SCHEDULE and w.succeeded and w.stop_at and w.stop_at <= now
            for w in inputs.recent_writes
        )
        if rhythm or scheduled_by_us or _operator_stopped_it(inputs):
            if _manageable(caps, ServiceField.RESUME):
                run_state_change = Resume(service_id=sid, reason="run state: start requested")
            else:
                draft.unsupported(
                    ServiceField.RESUME,
                    caps.resume,
                    "starting",
                    _note(caps, ServiceField.RESUME, "the cloud has no start action"),
                )
        else:
            draft.blocked.append(
                Blocked(
                    ServiceField.RESUME,
                    Reason.STOPPED_OUTSIDE_OPERATOR,
                    "the service was stopped outside the operator; set suspend: true to keep "
                    "it stopped, or start it in the cloud console",
                )
            )
    if run_state_change is not None:
        target = run_state_change.field
        draft.drift.append(
            FieldDrift(target, "Stopped" if want_stopped else "Running", observed.phase.value)
        )
        if _is_in_flight(inputs, target):
            draft.waiting = True
        else:
            draft.changes.append(run_state_change)

    # ---- field changes: only while the service runs and settles ------------------------------
    settled_running = observed.phase is Phase.RUNNING and not want_stopped
    if spec.replicas is not None:
        have = observed.replicas.desired
        if settled_running and have is not None and have != spec.replicas:
            draft.drift.append(FieldDrift(ServiceField.REPLICAS, str(spec.replicas), str(have)))
            if not _manageable(caps, ServiceField.REPLICAS):
                draft.unsupported(
                    ServiceField.REPLICAS,
                    caps.replicas,
                    "replicas",
                    _note(caps, ServiceField.REPLICAS, "the cloud cannot scale this service"),
                )
            elif _is_in_flight(inputs, ServiceField.REPLICAS):
                draft.waiting = True
            else:
                draft.changes.append(
                    Scale(
                        service_id=sid,
                        replicas=spec.replicas,
                        reason=f"replicas {have} -> {spec.replicas}",
                    )
                )

    # One run-state change at a time: the other fields follow once the cloud has settled.
    if spec.rate_limit is not None and run_state_change is None:
        _plan_rate_limit(inputs, draft)

    # A passed native stop is the cloud's to fire (or has fired): never clear it.
    if (
        schedule is not None
        and not observed.platform_stop
        and run_state_change is None
        and not (stop_at_passed and stop_at_native)
    ):
        _plan_schedule(inputs, draft, stop_at if stop_at_native else None)

    return _finish(
        inputs, draft, stop_reason, window_state.next_transition if window_state else None
    )


def _plan_rate_limit(inputs: PlanInput, draft: _Draft) -> None:
    spec, observed = inputs.spec, inputs.observed
    caps, sid = observed.capabilities, observed.service_id
    assert spec.rate_limit is not None
    wanted = spec.rate_limit
    have = observed.rate_limit
    want_rps = None if wanted.unlimited else wanted.requests_per_second
    want_scope = wanted.scope
    have_rps, have_scope = (have.rps, have.scope) if have else (None, None)
    if want_rps == have_rps and (want_rps is None or want_scope == have_scope):
        return
    draft.drift.append(
        FieldDrift(
            ServiceField.RATE_LIMIT,
            _fmt_rate(want_rps, want_scope),
            _fmt_rate(have_rps, have_scope),
        )
    )
    if not _manageable(caps, ServiceField.RATE_LIMIT):
        draft.unsupported(
            ServiceField.RATE_LIMIT,
            caps.rate_limit,
            "the RPS limit",
            _note(caps, ServiceField.RATE_LIMIT, "the cloud has no API to change it"),
        )
        return
    cloud_scope = CLOUD_RATE_LIMIT_SCOPE[observed.cloud]
    if want_scope is not None and want_scope is not cloud_scope:
        draft.blocked.append(
            Blocked(
                ServiceField.RATE_LIMIT,
                Reason.UNSUPPORTED_BY_CLOUD,
                f"{observed.cloud.value} limits requests {cloud_scope.value}, not "
                f"{wanted.scope}; change rateLimit.scope",
            )
        )
        return
    if _is_in_flight(inputs, ServiceField.RATE_LIMIT) or observed.phase is Phase.TRANSITIONING:
        draft.waiting = True
        return
    if want_rps is None:
        draft.changes.append(ClearRateLimit(service_id=sid, reason="rate limit -> unlimited"))
    else:
        assert want_scope is not None
        draft.changes.append(
            SetRateLimit(
                service_id=sid,
                rps=want_rps,
                scope=want_scope,
                reason=f"rate limit {_fmt_rate(have_rps, have_scope)} -> "
                f"{_fmt_rate(want_rps, want_scope)}",
            )
        )


def _plan_schedule(
    inputs: PlanInput, draft: _Draft, native_stop_at: datetime.datetime | None
) -> None:
    """Keep the cloud's one-shot scheduled stop equal to the native part of the spec."""
    observed = inputs.observed
    caps, sid = observed.capabilities, observed.service_id
    have = observed.scheduled_stop
    if caps.schedule is not Support.NATIVE:
        return  # emulated: the run-state logic stops the service at stopAt
    if native_stop_at is None and have is None:
        return
    if (
        native_stop_at is not None
        and have is not None
        and abs(native_stop_at - have) <= SCHEDULE_TOLERANCE
    ):
        return
    draft.drift.append(
        FieldDrift(
            ServiceField.SCHEDULE,
            native_stop_at.isoformat() if native_stop_at else "none",
            have.isoformat() if have else "none",
        )
    )
    if _is_in_flight(inputs, ServiceField.SCHEDULE) or observed.phase is Phase.TRANSITIONING:
        draft.waiting = True
        return
    if native_stop_at is None:
        draft.changes.append(ClearSchedule(service_id=sid, reason="scheduled stop -> none"))
    else:
        draft.changes.append(
            SetSchedule(
                service_id=sid,
                stop_at=native_stop_at,
                reason=f"scheduled stop -> {native_stop_at.isoformat()}",
            )
        )


def _invalid(inputs: PlanInput, message: str) -> Plan:
    return Plan(
        changes=(),
        proposed=(),
        drift=(),
        blocked=(),
        waiting=False,
        ready=False,
        reason=Reason.INVALID_SPEC,
        message=message,
        invalid=(message,),
    )


def _finish(
    inputs: PlanInput,
    draft: _Draft,
    stop_reason: Reason | None,
    next_transition: Transition | None,
) -> Plan:
    spec = inputs.spec
    proposed = tuple(draft.changes)
    observe_only = spec.policy.mode == "ObserveOnly"
    changes: tuple[Change, ...] = () if (observe_only or inputs.paused) else proposed
    for target in ServiceField:
        retry_at = backoff_until(inputs, target)
        if retry_at is not None:
            draft.wake_at.append(retry_at)
    wake_at = min(draft.wake_at) if draft.wake_at else None
    blocked = tuple(draft.blocked)
    drift = tuple(draft.drift)

    reason, message, ready = _verdict(
        inputs, draft, stop_reason, observe_only, bool(changes), blocked, drift
    )
    return Plan(
        changes=changes,
        proposed=proposed,
        drift=drift,
        blocked=blocked,
        waiting=draft.waiting,
        ready=ready,
        reason=reason,
        message=message,
        next_transition=next_transition,
        wake_at=wake_at,
    )


def _verdict(  # noqa: PLR0911, PLR0917 - severity order, one return per rung
    inputs: PlanInput,
    draft: _Draft,
    stop_reason: Reason | None,
    observe_only: bool,
    sending: bool,
    blocked: tuple[Blocked, ...],
    drift: tuple[FieldDrift, ...],
) -> tuple[Reason, str, bool]:
    observed = inputs.observed
    # Severity order: what needs a person first, then what the operator is doing.
    for wanted in (Reason.PLATFORM_STOPPED, Reason.UNSUPPORTED_BY_CLOUD):
        hits = [b for b in blocked if b.reason is wanted]
        if hits:
            return wanted, "; ".join(b.message for b in hits), False
    if observed.phase is Phase.FAILED:
        detail = f": {observed.message}" if observed.message else ""
        return (
            Reason.CLOUD_SERVICE_FAILED,
            f"the cloud reports {observed.raw_status}{detail}",
            False,
        )
    if inputs.paused and drift:
        return Reason.PAUSED, "paused by annotation; would send: " + _summary(draft), False
    if observe_only and drift:
        return Reason.OBSERVE_ONLY, "observe only; would send: " + _summary(draft), False
    if sending or draft.waiting or observed.phase is Phase.TRANSITIONING:
        what = _summary(draft) if draft.changes else f"cloud is {observed.raw_status}"
        return Reason.CONVERGING, what, False
    outside = [b for b in blocked if b.reason is Reason.STOPPED_OUTSIDE_OPERATOR]
    if outside:
        return outside[0].reason, outside[0].message, False
    if stop_reason is not None and observed.phase is Phase.STOPPED:
        message = "suspended" if stop_reason is Reason.SUSPENDED else "stopped by schedule"
        return stop_reason, message, False
    if inputs.paused:
        return Reason.PAUSED, "paused by annotation; the cloud matches the spec", False
    if observed.phase is not Phase.RUNNING:
        return Reason.CONVERGING, f"cloud is {observed.raw_status}", False
    return Reason.CONVERGED, "the cloud matches the spec", True


def _summary(draft: _Draft) -> str:
    if draft.changes:
        return ", ".join(c.reason or c.kind for c in draft.changes)
    return ", ".join(f"{d.field.value} {d.observed} -> {d.desired}" for d in draft.drift) or (
        "nothing"
    )
