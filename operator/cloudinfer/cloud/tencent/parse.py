"""Translating TI-ONE `Service` objects into the neutral model
(docs/clouds/tencent-tione.md#field-map)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
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
    "Normal": Phase.RUNNING,
    "Stopped": Phase.STOPPED,
    "Stopping": Phase.TRANSITIONING,
    "Pending": Phase.TRANSITIONING,  # 启动中, starting
    "Waiting": Phase.TRANSITIONING,  # 就绪中, becoming ready
    "CREATING": Phase.TRANSITIONING,
    "Abnormal": Phase.FAILED,  # 状态异常, with ServiceInfo.Status.Reason
    "CREATE_FAILED": Phase.FAILED,
    "TIMEOUT_EXCEPTION": Phase.FAILED,
}
"""`Service.Status` values (docs/clouds/tencent-tione.md#field-map) to neutral phases."""

PLATFORM_STOPS: Final = frozenset({"ARREARS_STOP", "WHITELIST_STOP"})
"""`BusinessStatus` values meaning the platform stopped the service
(docs/clouds/tencent-tione.md#asynchronous-behaviour)."""

CREATE_SUCCEEDED: Final = "CREATE_SUCCEED"

CAPABILITIES: Final = Capabilities(
    replicas=Support.NATIVE,
    rate_limit=Support.NATIVE,
    schedule=Support.NATIVE,
    stop=Support.NATIVE,
    resume=Support.NATIVE,
    # One ModifyModelServicePartialConfig takes both (docs/clouds/tencent-tione.md#writing-changes).
    one_call=(frozenset({ServiceField.RATE_LIMIT, ServiceField.SCHEDULE}),),
)

FALLBACK_CAPABILITIES: Final = CAPABILITIES.model_copy(
    update={
        "notes": {
            ServiceField.RATE_LIMIT: (
                "ModifyModelServicePartialConfig is unavailable for this account; the limit is "
                "set through ModifyModelService, which may roll the service"
            ),
            ServiceField.SCHEDULE: (
                "ModifyModelServicePartialConfig is unavailable for this account; the schedule "
                "is set through ModifyModelService, which may roll the service"
            ),
        }
    }
)


def observed_service(service: Payload, *, capabilities: Capabilities) -> ObservedService:
    """The neutral view of one `Service`; ServiceInfo.* wins over deprecated top-level copies."""
    info = service.object("ServiceInfo")
    status = service.optional_string("Status") or ""
    workload = info.optional_object("Status")
    ready = workload.optional_integer("ReadyReplicas", minimum=0) if workload is not None else None
    reason = workload.optional_string("Reason") if workload is not None else None
    failed = service.optional_string("CreateFailedReason")
    if failed == CREATE_SUCCEEDED:
        failed = None
    business = service.optional_string("BusinessStatus")
    return ObservedService(
        cloud=Cloud.TENCENT,
        service_id=service.string("ServiceId"),
        name=service.optional_string("ServiceGroupName"),
        replicas=Replicas(desired=info.optional_integer("Replicas", minimum=0), ready=ready),
        rate_limit=_rate_limit(info.optional_object("ServiceLimit")),
        scheduled_stop=_scheduled_stop(info.optional_object("ScheduledAction")),
        phase=PHASES.get(status, Phase.UNKNOWN),
        raw_status=status,
        platform_stop=business if business in PLATFORM_STOPS else None,
        message=reason or failed,
        updated_at=service.optional_iso_time("UpdateTime"),
        capabilities=capabilities,
        cloud_keys={"ServiceGroupId": service.optional_string("ServiceGroupId") or ""},
    )


def _rate_limit(limit: Payload | None) -> RateLimitSetting | None:
    if limit is None or not limit.boolean("EnableInstanceRpsLimit", default=False):
        return None
    rps = limit.optional_number("InstanceRpsLimit", minimum=0)
    if not rps:  # "0 = no limit"
        return None
    return RateLimitSetting(rps=rps, scope=RateLimitScope.PER_INSTANCE)


def _scheduled_stop(action: Payload | None) -> datetime | None:
    # Check ScheduleStop, not whether a time is present: a disabled schedule keeps its time.
    if action is None or not action.boolean("ScheduleStop", default=False):
        return None
    return action.optional_iso_time("ScheduleStopTime")
