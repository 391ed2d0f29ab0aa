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
- An open window with `replicas` (a tier) replaces spec.replicas while it is open; an active
  wake override (cloudinfer.dev/wake-until) sets the windows aside (docs/schedules.md).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace

from cloudinfer.api.conditions import Reason
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.model import (
    SCHEDULE_TOLERANCE,
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    FieldChange,
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
    combine,
)
from cloudinfer.reconcile.ledger import LedgerEntry, target_of
from cloudinfer.reconcile.outcomes import HOLD_REASONS, Retry, may_have_applied, outcome_named
from cloudinfer.reconcile.wake import Wake, read_wake
from cloudinfer.reconcile.windows import InvalidWindowError, Transition, WindowState, evaluate

# What each cloud's RPS limit applies to (docs/clouds/README.md#what-an-rps-limit-applies-to);
# converting scopes would silently change meaning on every scale, so a mismatch is reported instead.
CLOUD_RATE_LIMIT_SCOPE = {
    Cloud.TENCENT: RateLimitScope.PER_INSTANCE,
    Cloud.HUAWEI: RateLimitScope.PER_SERVICE,
    Cloud.BAIDU: RateLimitScope.PER_INSTANCE,
}
# A write the cloud has not reflected after this long (in observations taken after it) may
# be sent again; before that it is in flight.
IN_FLIGHT_GRACE = datetime.timedelta(seconds=60)
# A native one-shot stop is the cloud's to perform; the operator steps in only if the cloud
# has not stopped the service this long after the scheduled time.
NATIVE_STOP_GRACE = datetime.timedelta(seconds=60)


@dataclass(frozen=True)
class PlanInput:
    spec: InferenceServiceSpec
    observed: ObservedService
    observed_at: datetime.datetime
    """When the observation was read from the cloud."""
    now: datetime.datetime
    recent_writes: tuple[LedgerEntry, ...] = ()
    """The write ledger (status.journal), oldest first."""
    paused: bool = False
    generation: int = 0
    """The resource's metadata.generation: a held write is held for one generation."""
    account: str | None = None
    """The account fingerprint (observer.Snapshot.account): a new one lifts holds too."""
    wake_until: str | None = None
    """The cloudinfer.dev/wake-until annotation's value, as given (wake.py reads it)."""


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
    failed_write: LedgerEntry | None = None
    """The latest refused write still in effect (held, or backing off): Synced reports it."""
    transitions: tuple[Transition, ...] = ()
    """The next transitions of the windows (status.nextTransitions), soonest first."""
    wake: Wake | None = None
    """The wake override as read at `now` (status.wakeOverride)."""


def _fmt_rate(rps: float | None, scope: RateLimitScope | None) -> str:
    if rps is None:
        return "unlimited"
    return f"{rps:g}/s {scope.value if scope else ''}".strip()


def _last_write(inputs: PlanInput, target: ServiceField) -> LedgerEntry | None:
    writes = [w for w in inputs.recent_writes if w.wrote(target)]
    return max(writes, key=lambda w: w.at) if writes else None


def backoff_until(inputs: PlanInput, target: ServiceField) -> datetime.datetime | None:
    """When a refused write to `target` may be retried, if that is still in the future (the
    retry time the error policy gave the refusal, outcomes.py)."""
    last = _last_write(inputs, target)
    if last is None or last.succeeded or last.retry_at is None:
        return None
    return last.retry_at if last.retry_at > inputs.now else None


def held(inputs: PlanInput, change: FieldChange) -> LedgerEntry | None:
    """The refusal that holds `change`: the field's last write was this very change (kind
    and target), refused for good (outcomes.Retry.HOLD) at this generation and account
    fingerprint. Time plays no part: only a new generation or fingerprint lifts it. A refused
    write of several fields holds each of them: the cloud refused the call, not a field."""
    last = _last_write(inputs, change.field)
    if last is None or last.succeeded:
        return None
    if outcome_named(last.error_class).retry is not Retry.HOLD:
        return None
    if (last.generation, last.account) != (inputs.generation, inputs.account):
        return None
    written = (last.kind_of(change.field), last.target.of(change.field))
    if written != (change.kind, target_of(change)):
        return None
    return last


def _is_in_flight(inputs: PlanInput, target: ServiceField) -> bool:
    if backoff_until(inputs, target) is not None:
        return True
    for write in inputs.recent_writes:
        if not write.wrote(target):
            continue
        if not write.succeeded:
            # Unanswered (a timeout after sending): the cloud may have carried it out, or
            # still be at it (a slow cloud applies it after the client gave up). So it is not
            # sent again before an observation that started after its retry time shows
            # whether it did.
            settled = max(write.at, write.retry_at or write.at)
            if may_have_applied(write.error_class) and settled >= inputs.observed_at:
                return True
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
    changes: list[FieldChange] = field(default_factory=list)
    drift: list[FieldDrift] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    waiting: bool = False
    wake_at: list[datetime.datetime] = field(default_factory=list)
    held: list[LedgerEntry] = field(default_factory=list)

    def unsupported(self, target: ServiceField, support: Support, what: str, why: str) -> None:
        reason = Reason.UNSUPPORTED_BY_CLOUD
        self.blocked.append(Blocked(target, reason, f"{what} is {support.value} here: {why}"))


def _admit(inputs: PlanInput, draft: _Draft, change: FieldChange) -> None:
    """Send `change`, unless the cloud refused it for good (held), or a write to its field
    is in flight or backing off (waiting)."""
    refusal = held(inputs, change)
    if refusal is not None:
        draft.held.append(refusal)
        draft.blocked.append(
            Blocked(
                change.field,
                outcome_named(refusal.error_class).reason,
                f"{refusal.change} was refused ({refusal.error_class}: {refusal.error}); not "
                "sent again until the spec, the CloudAccount or its Secret changes",
            )
        )
    elif _is_in_flight(inputs, change.field):
        draft.waiting = True
    else:
        draft.changes.append(change)


def _manageable(caps: Capabilities, target: ServiceField) -> bool:
    return caps.support(target) in (Support.NATIVE, Support.EMULATED)


def _note(caps: Capabilities, target: ServiceField, default: str) -> str:
    return caps.notes.get(target, default)


@dataclass(frozen=True)
class _RunIntent:
    """The run state the spec asks for now, and what the cloud will do about it itself."""

    want_stopped: bool
    stop_reason: Reason | None
    """Suspended or ScheduledStop when the spec wants the service stopped."""
    windows: WindowState | None
    stop_at: datetime.datetime | None
    stop_at_native: bool
    """The cloud schedules the one-shot stop itself."""
    stop_at_passed: bool
    cloud_stops_soon: bool
    """A native stopAt has just passed: the cloud stops the service (maybe a few seconds
    late), so the operator must not race it."""
    replicas: int | None = None
    """The replicas wanted while running: an open window's tier, else spec.replicas."""
    wake: Wake | None = None


def plan(inputs: PlanInput) -> Plan:
    """Decide what to do about one service. Pure: same inputs, same plan."""
    draft = _Draft()
    try:
        intent = _run_intent(inputs, draft)
    except InvalidWindowError as err:
        return _invalid(inputs, str(err))
    if inputs.observed.phase is Phase.TRANSITIONING:
        draft.waiting = True
    run_state_change = _plan_run_state(inputs, intent, draft)
    _plan_replicas(inputs, intent, draft)
    # One run-state change at a time: the other fields follow once the cloud has settled.
    if inputs.spec.rate_limit is not None and run_state_change is None:
        _plan_rate_limit(inputs, draft)
    # A passed native stop is the cloud's to fire (or has fired): never clear it.
    if (
        inputs.spec.stop_schedule is not None
        and not inputs.observed.platform_stop
        and run_state_change is None
        and not (intent.stop_at_passed and intent.stop_at_native)
    ):
        _plan_schedule(inputs, draft, intent.stop_at if intent.stop_at_native else None)
    next_transition = intent.windows.next_transition if intent.windows else None
    return _with_schedule(_finish(inputs, draft, intent.stop_reason, next_transition), intent)


def _run_intent(inputs: PlanInput, draft: _Draft) -> _RunIntent:
    """Step 1: the desired run state from suspend, the windows and stopAt; the instants at
    which it changes go into `draft.wake_at`. Raises InvalidWindowError."""
    spec, now, caps = inputs.spec, inputs.now, inputs.observed.capabilities
    schedule = spec.stop_schedule
    wake = read_wake(inputs.wake_until, now)
    windows = _window_state(inputs, wake)
    inside_window = bool(windows and windows.inside)
    stop_at = schedule.stop_at if schedule is not None else None
    stop_at_native = _manageable(caps, ServiceField.SCHEDULE) and (caps.schedule is Support.NATIVE)
    stop_at_passed = stop_at is not None and stop_at <= now
    want_stopped = spec.suspend or inside_window or stop_at_passed
    cloud_stops_soon = (
        stop_at is not None
        and stop_at_passed
        and stop_at_native
        and not spec.suspend
        and not inside_window
        and now - stop_at < NATIVE_STOP_GRACE
    )
    if cloud_stops_soon and stop_at is not None:
        draft.wake_at.append(stop_at + NATIVE_STOP_GRACE)
    if windows and windows.next_transition:
        draft.wake_at.append(windows.next_transition.at)
    if windows and windows.horizon:
        draft.wake_at.append(windows.horizon)
    if wake is not None and wake.active and wake.until is not None:
        draft.wake_at.append(wake.until)
    if stop_at is not None and not stop_at_passed:
        draft.wake_at.append(stop_at)
    stop_reason = (
        Reason.SUSPENDED if spec.suspend else Reason.SCHEDULED_STOP if want_stopped else None
    )
    return _RunIntent(
        want_stopped, stop_reason, windows, stop_at, stop_at_native, stop_at_passed,
        cloud_stops_soon, _scheduled_replicas(spec, windows), wake,
    )  # fmt: skip


def _window_state(inputs: PlanInput, wake: Wake | None) -> WindowState | None:
    """The windows at `now` and their next transitions, with skip dates and an active wake
    override; None without windows. Raises InvalidWindowError."""
    schedule = inputs.spec.stop_schedule
    if schedule is None or not schedule.windows:
        return None
    return evaluate(
        schedule.windows,
        schedule.time_zone,
        inputs.now,
        skip_dates=schedule.skip_dates or (),
        full_replicas=inputs.spec.replicas,
        awake_until=wake.until if wake is not None and wake.active else None,
    )


def _scheduled_replicas(spec: InferenceServiceSpec, windows: WindowState | None) -> int | None:
    """The replicas wanted while running: the tier of the open windows (the lowest), else
    spec.replicas. A tier needs spec.replicas (the schema and the model refuse it without)."""
    if windows is not None and windows.level and spec.replicas is not None:
        return windows.level
    return spec.replicas


def _plan_run_state(inputs: PlanInput, intent: _RunIntent, draft: _Draft) -> FieldChange | None:
    """Step 2: stop or resume, unless the platform holds the service, the cloud is about to
    stop it itself, or someone else stopped it. Returns the change wanted (even if in flight)."""
    observed = inputs.observed
    caps, sid = observed.capabilities, observed.service_id
    is_stopped = observed.phase is Phase.STOPPED
    transitioning = observed.phase is Phase.TRANSITIONING
    change: FieldChange | None = None
    if observed.platform_stop:
        draft.blocked.append(
            Blocked(
                ServiceField.RESUME,
                Reason.PLATFORM_STOPPED,
                f"the platform stopped the service ({observed.platform_stop}); resolve it in "
                "the cloud console, the operator will not restart it",
            )
        )
    elif intent.want_stopped and not is_stopped and intent.cloud_stops_soon:
        draft.waiting = True
    elif intent.want_stopped and not is_stopped and not transitioning:
        if _manageable(caps, ServiceField.STOP):
            change = Stop(service_id=sid, reason=f"{intent.stop_reason}: stop requested")
        else:
            draft.unsupported(
                ServiceField.STOP,
                caps.stop,
                "stopping",
                _note(caps, ServiceField.STOP, "the cloud has no stop action"),
            )
    elif not intent.want_stopped and is_stopped:
        change = _resume(inputs, intent, draft)
    if change is not None:
        draft.drift.append(
            FieldDrift(
                change.field, "Stopped" if intent.want_stopped else "Running", observed.phase.value
            )
        )
        _admit(inputs, draft, change)
    return change


def _resume(inputs: PlanInput, intent: _RunIntent, draft: _Draft) -> FieldChange | None:
    """A stopped service the spec wants running: started again only if the operator (or a
    window, which owns the rhythm) stopped it."""
    caps, sid = inputs.observed.capabilities, inputs.observed.service_id
    schedule = inputs.spec.stop_schedule
    rhythm = intent.windows is not None  # windows own the run state
    # A native one-shot stop the operator scheduled is the operator's stop too: moving
    # stopAt into the future (or removing it) starts the service again.
    scheduled_by_us = schedule is not None and any(
        w.wrote(ServiceField.SCHEDULE)
        and w.succeeded
        and w.target.stop_at is not None
        and w.target.stop_at <= inputs.now
        for w in inputs.recent_writes
    )
    if not (rhythm or scheduled_by_us or _operator_stopped_it(inputs)):
        draft.blocked.append(
            Blocked(
                ServiceField.RESUME,
                Reason.STOPPED_OUTSIDE_OPERATOR,
                "the service was stopped outside the operator; set suspend: true to keep "
                "it stopped, or start it in the cloud console",
            )
        )
        return None
    if _manageable(caps, ServiceField.RESUME):
        return Resume(service_id=sid, reason="run state: start requested")
    draft.unsupported(
        ServiceField.RESUME,
        caps.resume,
        "starting",
        _note(caps, ServiceField.RESUME, "the cloud has no start action"),
    )
    return None


def _plan_replicas(inputs: PlanInput, intent: _RunIntent, draft: _Draft) -> None:
    """Step 3: replicas (a window's tier, else spec.replicas), only while the service runs
    and settles."""
    observed = inputs.observed
    caps, sid = observed.capabilities, observed.service_id
    settled_running = observed.phase is Phase.RUNNING and not intent.want_stopped
    have = observed.replicas.desired
    wanted = intent.replicas
    if wanted is None or not settled_running or have is None or have == wanted:
        return
    draft.drift.append(FieldDrift(ServiceField.REPLICAS, str(wanted), str(have)))
    if not _manageable(caps, ServiceField.REPLICAS):
        draft.unsupported(
            ServiceField.REPLICAS,
            caps.replicas,
            "replicas",
            _note(caps, ServiceField.REPLICAS, "the cloud cannot scale this service"),
        )
    else:
        reason = f"replicas {have} -> {wanted}"
        _admit(inputs, draft, Scale(service_id=sid, replicas=wanted, reason=reason))


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
    if observed.phase is Phase.TRANSITIONING:
        draft.waiting = True
        return
    change: FieldChange
    if want_rps is None:
        change = ClearRateLimit(service_id=sid, reason="rate limit -> unlimited")
    else:
        assert want_scope is not None
        change = SetRateLimit(
            service_id=sid,
            rps=want_rps,
            scope=want_scope,
            reason=f"rate limit {_fmt_rate(have_rps, have_scope)} -> "
            f"{_fmt_rate(want_rps, want_scope)}",
        )
    _admit(inputs, draft, change)


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
    if observed.phase is Phase.TRANSITIONING:
        draft.waiting = True
        return
    change: FieldChange
    if native_stop_at is None:
        change = ClearSchedule(service_id=sid, reason="scheduled stop -> none")
    else:
        change = SetSchedule(
            service_id=sid,
            stop_at=native_stop_at,
            reason=f"scheduled stop -> {native_stop_at.isoformat()}",
        )
    _admit(inputs, draft, change)


def _with_schedule(the_plan: Plan, intent: _RunIntent) -> Plan:
    """The schedule's part of the plan: the next transitions, the wake override, and the
    Ready verdict of a service held at a window's tier or kept up by a wake override."""
    windows, wake = intent.windows, intent.wake
    reason, message = the_plan.reason, the_plan.message
    if the_plan.ready and windows is not None and windows.level and not intent.want_stopped:
        reason = Reason.SCALED_BY_SCHEDULE
        message = f"a stop window holds the service at {intent.replicas} replicas"
    elif the_plan.ready and windows is not None and wake is not None and wake.active:
        assert wake.until is not None
        reason = Reason.WAKE_OVERRIDE
        message = (
            f"woken until {wake.until.strftime('%Y-%m-%dT%H:%M:%SZ')} by "
            "cloudinfer.dev/wake-until; the stop windows apply again after it"
        )
    if wake is not None and wake.problem is not None:
        message = f"{message}; {wake.problem}"
    return replace(
        the_plan,
        reason=reason,
        message=message,
        transitions=windows.transitions if windows is not None else (),
        wake=wake,
    )


def one_call_per_group(changes: tuple[FieldChange, ...], caps: Capabilities) -> tuple[Change, ...]:
    """The writes for `changes`: the changes to fields one call can carry together
    (`caps.one_call`) become one `Combined` write, in the place of the first of them; every
    other change stays a write of its own. Each part was admitted on its own (`_admit`), so
    the duplicate guard and the holds have already been applied field by field."""
    writes: list[Change | tuple[FieldChange, ...]] = list(changes)
    for group in caps.one_call:
        together = tuple(c for c in changes if c.field in group)
        if len(together) < 2:
            continue
        first = writes.index(together[0])
        writes = [w for w in writes if w not in together]
        writes.insert(first, together)
    return tuple(combine(w) if isinstance(w, tuple) else w for w in writes)


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
    proposed = one_call_per_group(tuple(draft.changes), inputs.observed.capabilities)
    observe_only = spec.policy.mode == "ObserveOnly"
    changes: tuple[Change, ...] = () if (observe_only or inputs.paused) else proposed
    backing_off: list[LedgerEntry] = []
    for target in ServiceField:
        retry_at = backoff_until(inputs, target)
        last = _last_write(inputs, target)
        if retry_at is not None and last is not None:
            draft.wake_at.append(retry_at)
            if last.error_class is not None:  # not an entry of a version before the ledger
                backing_off.append(last)
    refusals = [*draft.held, *backing_off]
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
        failed_write=max(refusals, key=lambda w: w.at) if refusals else None,
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
    for wanted in dict.fromkeys(
        (Reason.PLATFORM_STOPPED, Reason.UNSUPPORTED_BY_CLOUD, *HOLD_REASONS)
    ):
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
