"""`plan`: what the operator would send now, from the operator's own pure planner.

The planner (reconcile/planner.py) is fed what the operator feeds it, rebuilt from what the
apiserver and the metrics hold: the spec, the status's observed block and write ledger, the
pause annotation, the generation, the account fingerprint (CloudAccount uid and generation,
Secret resourceVersion) and the time of the account's last observation. docs/cli.md lists
where this can differ from the operator's own pass, and why it is still the faithful source.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cloudinfer.api.conditions import PAUSED_ANNOTATION, WAKE_UNTIL_ANNOTATION, Reason
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.baidu.parse import CAPABILITIES as BAIDU
from cloudinfer.cloud.huawei.parse import CAPABILITIES as HUAWEI
from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    Support,
)
from cloudinfer.cloud.tencent.parse import CAPABILITIES as TENCENT
from cloudinfer.reconcile import ledger
from cloudinfer.reconcile.planner import Plan, PlanInput, plan

BASE_CAPABILITIES = {Cloud.TENCENT: TENCENT, Cloud.HUAWEI: HUAWEI, Cloud.BAIDU: BAIDU}
NOT_PLANNED = frozenset(
    {
        Reason.ACCOUNT_NOT_READY, Reason.SERVICE_NOT_FOUND, Reason.INSTANCE_NOT_FOUND,
        Reason.SERVICE_CLAIMED, Reason.PENDING_OBSERVATION, Reason.AUTH_FAILED,
        Reason.CLOUD_UNREACHABLE, Reason.CLOUD_THROTTLED, Reason.QUOTA_EXCEEDED,
        Reason.SECRET_NOT_FOUND,
    }
)  # fmt: skip
"""Ready reasons the reconciler writes when it stops before planning (no account, no
observation, no claim, no such instance): it sends nothing then."""

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ServicePlan:
    """The plan of one InferenceService, or why there is none."""

    namespace: str
    name: str
    mode: str
    """Enforce or ObserveOnly."""
    paused: bool
    plan: Plan | None
    not_planned: str | None = None
    """Why the operator makes no plan now (and so sends nothing)."""
    notes: list[str] = field(default_factory=list)
    """Where this plan may differ from the operator's."""


def _time(value: Any) -> datetime.datetime | None:  # noqa: ANN401 - a JSON value
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = status.get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def capabilities(cloud: Cloud, shown: Mapping[str, Any]) -> Capabilities:
    """The cloud's capabilities with the per-field support status.capabilities shows (the
    planner also needs the schedule and resume support, which status derives from)."""
    base = BASE_CAPABILITIES[cloud]

    def support(key: str, default: Support) -> Support:
        try:
            return Support(shown[key]) if key in shown else default
        except ValueError:
            return default

    stop = support("suspend", base.stop)
    stop_at = shown.get("stopAt")
    schedule = base.schedule
    if stop_at == Support.NATIVE.value:
        schedule = Support.NATIVE
    elif stop_at is not None and schedule is Support.NATIVE:
        schedule = Support.UNSUPPORTED  # status says the one-shot stop is not native here
    windows = shown.get("stopWindows")
    resume = base.resume
    if windows == Support.EMULATED.value and resume not in (Support.NATIVE, Support.EMULATED):
        resume = Support.EMULATED
    elif windows == Support.UNSUPPORTED.value and stop in (Support.NATIVE, Support.EMULATED):
        resume = Support.UNSUPPORTED
    return base.model_copy(
        update={
            "replicas": support("replicas", base.replicas),
            "rate_limit": support("rateLimit", base.rate_limit),
            "schedule": schedule,
            "stop": stop,
            "resume": resume,
        }
    )


def observed_service(
    cloud: Cloud, service_id: str, status: Mapping[str, Any]
) -> ObservedService | None:
    """The observation status.observed was written from; None without one."""
    block = status.get("observed")
    if not block or "phase" not in block:
        return None
    rate = block.get("rateLimit") or {}
    rps, scope = rate.get("requestsPerSecond"), rate.get("scope")
    platform_stop = None
    message = block.get("message")
    # status.observed.message carries the platform's stop if there is one; Ready says which.
    if ready_condition(status).get("reason") == Reason.PLATFORM_STOPPED.value:
        platform_stop, message = message or "platform stop", None
    return ObservedService(
        cloud=cloud,
        service_id=service_id,
        replicas=Replicas(desired=block.get("replicas"), ready=block.get("readyReplicas")),
        rate_limit=(
            RateLimitSetting(rps=rps, scope=RateLimitScope(scope)) if rps and scope else None
        ),
        scheduled_stop=_time(block.get("scheduledStop")),
        phase=Phase(block["phase"]),
        raw_status=str(block.get("cloudStatus", "")),
        platform_stop=platform_stop,
        message=message,
        updated_at=_time(block.get("updateTime")),
        capabilities=capabilities(cloud, status.get("capabilities") or {}),
    )


@dataclass(frozen=True)
class AccountFacts:
    """What the plan needs of the service's CloudAccount."""

    cloud: Cloud | None
    fingerprint: str | None
    """uid/generation/Secret resourceVersion, as the operator's observer computes it."""
    observed_at: datetime.datetime | None
    """When its last successful list started (from the metrics)."""


def fingerprint(account: Mapping[str, Any], secret_version: str | None) -> str:
    meta = account.get("metadata") or {}
    return f"{meta.get('uid', '')}/{meta.get('generation', 0)}/{secret_version or ''}"


def plan_service(
    obj: Mapping[str, Any], account: AccountFacts, now: datetime.datetime
) -> ServicePlan:
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    paused = str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"
    raw_spec = obj.get("spec") or {}
    mode = str((raw_spec.get("policy") or {}).get("mode", "Enforce"))

    def none(why: str) -> ServicePlan:
        return ServicePlan(namespace, name, mode, paused, None, not_planned=why)

    try:
        spec = InferenceServiceSpec.model_validate(raw_spec)
    except ValidationError as err:
        return none(f"the spec is invalid: {err.errors()[0]['msg']}")
    ready = ready_condition(status)
    if ready.get("reason") in NOT_PLANNED:
        return none(
            f"the operator stops before planning: {ready['reason']}: {ready.get('message', '')}"
        )
    cloud = account.cloud
    if status.get("provider"):
        cloud = Cloud(status["provider"])
    observed = observed_service(cloud, spec.service_id, status) if cloud else None
    if observed is None:
        return none("the service has not been observed yet (status.observed is empty)")
    notes = []
    observed_at = account.observed_at
    if observed_at is None:
        observed_at = now
        notes.append(
            "the time of the last observation is unknown (no metrics): a write made since the "
            "last observation may show as still to send"
        )
    journal = ledger.read(status.get("journal") or [])
    if account.fingerprint is None or account.fingerprint.endswith("/"):
        notes.append(
            "the account's Secret could not be read: a write held for this Secret shows as "
            "held even if the Secret changed"
        )
    the_plan = plan(
        PlanInput(
            spec=spec,
            observed=observed,
            observed_at=observed_at,
            now=now,
            recent_writes=journal,
            paused=paused,
            generation=int(meta.get("generation", 0)),
            account=_effective_fingerprint(account.fingerprint, journal),
            wake_until=(
                None
                if annotations.get(WAKE_UNTIL_ANNOTATION) is None
                else str(annotations[WAKE_UNTIL_ANNOTATION])
            ),
        )
    )
    return ServicePlan(namespace, name, mode, paused, the_plan, notes=notes)


def _effective_fingerprint(
    computed: str | None, journal: tuple[ledger.LedgerEntry, ...]
) -> str | None:
    """Without the Secret's resourceVersion, the last recorded fingerprint of the same
    CloudAccount uid and generation is assumed current."""
    if computed is None:
        return None
    if not computed.endswith("/"):
        return computed
    for entry in reversed(journal):
        if entry.account and entry.account.startswith(computed):
            return entry.account
    return computed
