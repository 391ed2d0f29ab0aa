"""Pure status builders: conditions, the observed block, capabilities, the journal, patches.

Status is rebuilt from scratch every reconcile and compared with what is stored; only a
difference is written (as a JSON merge patch), so a steady state writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from cloudinfer.api.conditions import ConditionType, Reason
from cloudinfer.api.inferenceservice import JOURNAL_MAX_ENTRIES, MAX_OBSERVED_INSTANCES
from cloudinfer.cloud.model import (
    Capabilities,
    ObservedService,
    RateLimitScope,
    ServiceField,
    Support,
)
from cloudinfer.reconcile.planner import Plan, RecentWrite
from cloudinfer.reconcile.windows import Transition

JsonDict = dict[str, Any]
_CAPABILITY = {
    Support.NATIVE: "Native",
    Support.EMULATED: "Emulated",
    Support.READ_ONLY: "ReadOnly",
    Support.UNSUPPORTED: "Unsupported",
}
_SCOPE = {RateLimitScope.PER_REPLICA: "PerInstance", RateLimitScope.PER_SERVICE: "PerService"}
_FIELD_BY_KIND = {
    "scale": ServiceField.REPLICAS,
    "set-rate-limit": ServiceField.RATE_LIMIT,
    "clear-rate-limit": ServiceField.RATE_LIMIT,
    "set-schedule": ServiceField.SCHEDULE,
    "clear-schedule": ServiceField.SCHEDULE,
    "stop": ServiceField.STOP,
    "resume": ServiceField.RESUME,
}


def timestamp(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: ConditionType,
    status: bool,
    reason: Reason | str,
    message: str,
    *,
    generation: int,
    now: datetime.datetime,
    previous: Sequence[Mapping[str, Any]],
) -> JsonDict:
    """A metav1.Condition; lastTransitionTime moves only when `status` changes."""
    value = "True" if status else "False"
    transition = timestamp(now)
    for old in previous:
        if old.get("type") == type_.value and old.get("status") == value:
            transition = str(old.get("lastTransitionTime", transition))
    return {
        "type": type_.value,
        "status": value,
        "reason": str(reason),
        "message": message[:32768],
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }


def capabilities(caps: Capabilities) -> JsonDict:
    stop_ok = caps.stop in (Support.NATIVE, Support.EMULATED)
    resume_ok = caps.resume in (Support.NATIVE, Support.EMULATED)
    if caps.schedule is Support.NATIVE:
        stop_at = "Native"
    else:
        stop_at = "Emulated" if stop_ok else "Unsupported"
    return {
        "replicas": _CAPABILITY[caps.replicas],
        "rateLimit": _CAPABILITY[caps.rate_limit],
        "stopAt": stop_at,
        "stopWindows": "Emulated" if stop_ok and resume_ok else "Unsupported",
        "suspend": _CAPABILITY[caps.stop],
    }


def observed_block(observed: ObservedService) -> JsonDict:
    block: JsonDict = {
        "replicas": observed.replicas.desired,
        "readyReplicas": observed.replicas.ready,
        "phase": observed.phase.value,
        "cloudStatus": observed.raw_status,
        "message": observed.platform_stop or observed.message,
        "updateTime": timestamp(observed.updated_at) if observed.updated_at else None,
        "scheduledStop": timestamp(observed.scheduled_stop) if observed.scheduled_stop else None,
        "rateLimit": (
            {
                "requestsPerSecond": observed.rate_limit.rps,
                "scope": _SCOPE[observed.rate_limit.scope],
            }
            if observed.rate_limit
            else None
        ),
        "instances": (
            [
                _observed_instance(unit.instance_id, unit.replicas.desired)
                for unit in observed.instances[:MAX_OBSERVED_INSTANCES]
            ]
            if observed.instances
            else None
        ),
    }
    return {key: value for key, value in block.items() if value is not None}


def _observed_instance(instance_id: str, replicas: int | None) -> JsonDict:
    return {"instanceId": instance_id} | ({} if replicas is None else {"replicas": replicas})


def next_transition(transition: Transition | None) -> JsonDict | None:
    if transition is None:
        return None
    return {"action": transition.action, "at": timestamp(transition.at)}


def precise_timestamp(when: datetime.datetime) -> str:
    """Milliseconds matter in the journal: the duplicate-write guard compares write times
    with observation times."""
    utc = when.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def journal_entry(
    *,
    when: datetime.datetime,
    action: str,
    change: str,
    request_id: str | None,
    succeeded: bool,
) -> JsonDict:
    entry: JsonDict = {
        "time": precise_timestamp(when),
        "action": action[:128],
        "change": change[:512],
        "result": "Succeeded" if succeeded else "Failed",
    }
    if request_id:
        entry["requestId"] = request_id[:256]
    return entry


def append_journal(journal: Sequence[JsonDict], entries: Sequence[JsonDict]) -> list[JsonDict]:
    return [*journal, *entries][-JOURNAL_MAX_ENTRIES:]


def journal_field(entry: Mapping[str, Any]) -> ServiceField | None:
    """Which field a journal entry wrote; the kind is the change's first word."""
    kind = str(entry.get("change", "")).split(":", 1)[0]
    return _FIELD_BY_KIND.get(kind)


def recent_writes(journal: Sequence[Mapping[str, Any]]) -> tuple[RecentWrite, ...]:
    """The journal as the planner's duplicate-write guard (survives operator restarts)."""
    writes = []
    for entry in journal:
        target = journal_field(entry)
        try:
            at = datetime.datetime.fromisoformat(str(entry.get("time")))
        except ValueError:
            continue
        if target is not None:
            stop_at = None
            change = str(entry.get("change", ""))
            if change.startswith("set-schedule:") and "-> " in change:
                with contextlib.suppress(ValueError):
                    stop_at = datetime.datetime.fromisoformat(
                        change.rsplit("-> ", 1)[1].split(" ", 1)[0]
                    )
            writes.append(RecentWrite(target, at, entry.get("result") == "Succeeded", stop_at))
    return tuple(writes)


def service_conditions(
    plan: Plan,
    *,
    synced: tuple[bool, Reason | str, str],
    generation: int,
    now: datetime.datetime,
    previous: Sequence[Mapping[str, Any]],
) -> list[JsonDict]:
    drifted = bool(plan.drift)
    if drifted:
        fields = ", ".join(f"{d.field.value}: {d.observed} -> {d.desired}" for d in plan.drift)
        drift_reason: Reason | str = plan.reason if not plan.ready else Reason.CONVERGING
        drift_message = f"{fields} ({plan.reason}: {plan.message})"
    else:
        drift_reason, drift_message = Reason.IN_SYNC, "the cloud matches every managed field"
    synced_ok, synced_reason, synced_message = synced
    return [
        condition(
            ConditionType.READY, plan.ready, plan.reason, plan.message,
            generation=generation, now=now, previous=previous,
        ),
        condition(
            ConditionType.SYNCED, synced_ok, synced_reason, synced_message,
            generation=generation, now=now, previous=previous,
        ),
        condition(
            ConditionType.DRIFTED, drifted, drift_reason, drift_message,
            generation=generation, now=now, previous=previous,
        ),
    ]  # fmt: skip


def failure_conditions(
    reason: Reason | str,
    message: str,
    *,
    generation: int,
    now: datetime.datetime,
    previous: Sequence[Mapping[str, Any]],
) -> list[JsonDict]:
    """Conditions when no plan could be made (account, observation or spec problems)."""
    kept_drift = [dict(c) for c in previous if c.get("type") == ConditionType.DRIFTED.value]
    conditions = [
        condition(
            ConditionType.READY, False, reason, message,
            generation=generation, now=now, previous=previous,
        ),
        condition(
            ConditionType.SYNCED, False, reason, message,
            generation=generation, now=now, previous=previous,
        ),
    ]  # fmt: skip
    return conditions + kept_drift


def merge_patch(old: Any, new: Any) -> Any:  # noqa: ANN401 - JSON values
    """RFC 7386 patch turning `old` into `new`; None when they are equal."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None if old == new else new
    patch: JsonDict = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
            continue
        sub = merge_patch(old[key], value)
        if sub is not None or (value is None and old[key] is not None):
            patch[key] = sub
    return patch or None
