"""Pure status builders: conditions, the observed block, capabilities, patches.

The journal is the write ledger's (ledger.py).

Status is rebuilt from scratch every reconcile and compared with what is stored; only a
difference is written (as a JSON merge patch), so a steady state writes nothing.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cloudinfer.api.conditions import ConditionType, Reason
from cloudinfer.api.inferenceservice import MAX_OBSERVED_INSTANCES
from cloudinfer.cloud.model import (
    Capabilities,
    ObservedService,
    Support,
)
from cloudinfer.reconcile.planner import Plan
from cloudinfer.reconcile.wake import Wake
from cloudinfer.reconcile.windows import Transition

JsonDict = dict[str, Any]

STAMPS_CACHED: Final = 4096
"""Formatted times kept (a few per service in flight): status writes format the same ones."""


@functools.lru_cache(maxsize=STAMPS_CACHED)
def timestamp(when: datetime.datetime) -> str:
    """Cached: every status write formats each service's observed times again."""
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
    transition = None
    for old in previous:
        if old.get("type") == type_.value and old.get("status") == value:
            transition = old.get("lastTransitionTime")
    return {
        "type": type_.value,
        "status": value,
        "reason": str(reason),
        "message": message[:32768],
        "lastTransitionTime": timestamp(now) if transition is None else str(transition),
        "observedGeneration": generation,
    }


def capabilities(caps: Capabilities) -> JsonDict:
    stop_ok = caps.stop in (Support.NATIVE, Support.EMULATED)
    resume_ok = caps.resume in (Support.NATIVE, Support.EMULATED)
    if caps.schedule is Support.NATIVE:
        stop_at = Support.NATIVE
    else:
        stop_at = Support.EMULATED if stop_ok else Support.UNSUPPORTED
    return {
        "replicas": caps.replicas.value,
        "rateLimit": caps.rate_limit.value,
        "stopAt": stop_at.value,
        "stopWindows": (Support.EMULATED if stop_ok and resume_ok else Support.UNSUPPORTED).value,
        "suspend": caps.stop.value,
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
                "scope": observed.rate_limit.scope.value,
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
    block: JsonDict = {"action": transition.action, "at": timestamp(transition.at)}
    if transition.replicas is not None:
        block["replicas"] = transition.replicas
    return block


def wake_override(wake: Wake | None) -> JsonDict | None:
    """status.wakeOverride: the annotation as read, while the resource has one."""
    if wake is None:
        return None
    block: JsonDict = {"value": wake.value, "state": wake.state}
    if wake.until is not None:
        block["until"] = timestamp(wake.until)
    return block


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
