"""Translating Qianfan console v2 service objects into the neutral model
(docs/clouds/baidu-qianfan.md#field-map)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
    InstanceReplicas,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    ServiceField,
    Support,
)
from cloudinfer.cloud.payload import Payload

PHASES: Final[Mapping[str, Phase]] = {
    "New": Phase.TRANSITIONING,  # 待发布
    "Deploying": Phase.TRANSITIONING,  # 发布中
    "Serving": Phase.RUNNING,  # 已发布
    "Done": Phase.RUNNING,  # in the SDK's enum only
    "Failed": Phase.FAILED,  # 发布失败
    "Stopped": Phase.STOPPED,  # 暂停服务
}
"""`runStatus` values (docs/clouds/baidu-qianfan.md#field-map) to neutral phases."""

UNPAID_CHARGE_STATUS: Final = "NotOpen"
"""`chargeStatus` of a service whose billing is not open: a stop we must not fight [INFERRED]."""

CAPABILITIES: Final = Capabilities(
    replicas=Support.NATIVE,
    rate_limit=Support.READ_ONLY,
    schedule=Support.UNSUPPORTED,
    stop=Support.NATIVE,
    resume=Support.UNSUPPORTED,
    notes={
        ServiceField.RATE_LIMIT: (
            "Qianfan sets the per-replica QPS at CreateService; no API updates it"
        ),
        ServiceField.SCHEDULE: "Qianfan services have no stop schedule",
        ServiceField.RESUME: "Qianfan has DeactivateService but no action to bring a service back",
    },
)


def observed_service(service: Payload) -> ObservedService:
    status = service.optional_string("runStatus") or ""
    phase = PHASES.get(status, Phase.UNKNOWN)
    resources = service.optional_object("resourceConfig")
    units = service.objects("computeUnits", optional=True)
    counts = [unit.integer("deploymentReplicasCount", minimum=0) for unit in units]
    desired = None
    if resources is not None:
        desired = resources.optional_integer("replicasCount", minimum=0)
    if desired is None and units:
        desired = sum(counts)
    qps = resources.optional_number("qps", minimum=0) if resources is not None else None
    charge = service.optional_string("chargeStatus")
    return ObservedService(
        cloud=Cloud.BAIDU,
        service_id=service.string("serviceId"),
        name=service.optional_string("name"),
        replicas=_replicas(desired, phase),
        rate_limit=RateLimitSetting(rps=qps, scope=RateLimitScope.PER_INSTANCE) if qps else None,
        phase=phase,
        raw_status=status,
        platform_stop=f"chargeStatus={charge}" if charge == UNPAID_CHARGE_STATUS else None,
        updated_at=service.optional_iso_time("updateTime"),
        capabilities=CAPABILITIES,
        # ScaleService acts on one compute-unit instance (seed 003).
        instances=tuple(
            InstanceReplicas(instance_id=unit.string("instanceId"), replicas=_replicas(n, phase))
            for unit, n in zip(units, counts, strict=True)
        ),
    )


def _replicas(desired: int | None, phase: Phase) -> Replicas:
    # No ready count is documented [UNVERIFIED]; Serving means every replica serves.
    return Replicas(desired=desired, ready={Phase.RUNNING: desired, Phase.STOPPED: 0}.get(phase))
