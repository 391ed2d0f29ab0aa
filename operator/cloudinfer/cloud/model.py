"""The cloud-neutral model: what the operator observes of a service and what it may change.

Providers translate each cloud's fields into these types (clouds.md §5); the planner compares
them with the desired state without knowing which cloud it talks to.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Cloud(StrEnum):
    TENCENT = "tencent"
    HUAWEI = "huawei"
    BAIDU = "baidu"


class Phase(StrEnum):
    """A cloud's service status mapped to a neutral phase; the raw status is kept beside it."""

    RUNNING = "Running"
    TRANSITIONING = "Transitioning"
    STOPPED = "Stopped"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class Support(StrEnum):
    """How a cloud supports managing one field of a service."""

    NATIVE = "native"
    """A dedicated API call changes it."""
    EMULATED = "emulated"
    """The operator achieves it with other calls (e.g. stopping at the scheduled time itself)."""
    READ_ONLY = "read-only"
    """It can be observed but not changed after creation (e.g. Qianfan's per-replica QPS)."""
    UNSUPPORTED = "unsupported"
    """The cloud neither reports nor changes it."""


class ServiceField(StrEnum):
    """The fields of a service the operator manages."""

    REPLICAS = "replicas"
    RATE_LIMIT = "rateLimit"
    SCHEDULE = "schedule"
    STOP = "stop"
    RESUME = "resume"


class RateLimitScope(StrEnum):
    """What an RPS limit applies to; the clouds differ (clouds.md §5)."""

    PER_REPLICA = "PerReplica"
    """Each instance gets the limit (TI-ONE `InstanceRpsLimit`, Qianfan `qps`)."""
    PER_SERVICE = "PerService"
    """The whole service shares it (ModelArts v2 `rate_limit`)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Capabilities(_Frozen):
    """Per field, how this cloud (and account) supports managing it, and why if not natively."""

    replicas: Support
    rate_limit: Support
    schedule: Support
    stop: Support
    resume: Support
    notes: dict[ServiceField, str] = Field(default_factory=dict)
    """Why a field is not native, for the user (e.g. "v1 has no RPS-limit field")."""

    def support(self, field: ServiceField) -> Support:
        return {
            ServiceField.REPLICAS: self.replicas,
            ServiceField.RATE_LIMIT: self.rate_limit,
            ServiceField.SCHEDULE: self.schedule,
            ServiceField.STOP: self.stop,
            ServiceField.RESUME: self.resume,
        }[field]


class Replicas(_Frozen):
    desired: int | None = Field(default=None, ge=0)
    """What the cloud is asked to run; None when the cloud does not report it in this read."""
    ready: int | None = Field(default=None, ge=0)
    """Instances serving; None when the cloud has no such count (ModelArts v1, Qianfan)."""


class InstanceReplicas(_Frozen):
    """The replicas on one instance of a service that scales per instance (Qianfan)."""

    instance_id: str = Field(min_length=1)
    replicas: Replicas


class RateLimitSetting(_Frozen):
    rps: float = Field(gt=0)
    scope: RateLimitScope


class ObservedService(_Frozen):
    """One service as the cloud reports it, in neutral terms."""

    cloud: Cloud
    service_id: str = Field(min_length=1)
    name: str | None = None
    replicas: Replicas
    rate_limit: RateLimitSetting | None = None
    """None means no limit is set (or the cloud cannot report one: see capabilities)."""
    scheduled_stop: AwareDatetime | None = None
    """When the cloud will stop the service on its own; None when no stop is scheduled."""
    phase: Phase
    raw_status: str
    """The cloud's own status string, unmapped, for people and debugging."""
    platform_stop: str | None = None
    """Set when the platform stopped the service itself (TI-ONE `ARREARS_STOP`,
    `WHITELIST_STOP`; ModelArts `frozen_infos`). The operator must not fight it."""
    message: str | None = None
    """The cloud's failure reason, if any."""
    updated_at: AwareDatetime | None = None
    """The cloud's last-update time; batch observers use it to skip unchanged services."""
    capabilities: Capabilities
    instances: tuple[InstanceReplicas, ...] | None = None
    """Per compute-unit instance, in the cloud's order, on a cloud that scales one instance
    at a time (Qianfan `ScaleService`); None on clouds that scale the whole service."""
    instance_id: str | None = None
    """The instance `replicas` describes and a `Scale` acts on, once `select_instance`
    (cloud/instances.py) chose it; None means `replicas` is the whole service's."""
    cloud_keys: dict[str, str] = Field(default_factory=dict)
    """Cloud-specific identifiers a provider needs to change the service (e.g. a ModelArts
    `model_id`). Opaque to everything else."""


class _ChangeBase(_Frozen):
    field: ClassVar[ServiceField]
    service_id: str = Field(min_length=1)
    reason: str = ""
    """Why the planner wants this change, for the operation journal."""


class Scale(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.REPLICAS
    kind: Literal["scale"] = "scale"
    replicas: int = Field(ge=0)


class SetRateLimit(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.RATE_LIMIT
    kind: Literal["set-rate-limit"] = "set-rate-limit"
    rps: float = Field(gt=0)
    scope: RateLimitScope


class ClearRateLimit(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.RATE_LIMIT
    kind: Literal["clear-rate-limit"] = "clear-rate-limit"


class SetSchedule(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.SCHEDULE
    kind: Literal["set-schedule"] = "set-schedule"
    stop_at: AwareDatetime
    """The absolute time to stop at; providers of relative schedules convert it."""


class ClearSchedule(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.SCHEDULE
    kind: Literal["clear-schedule"] = "clear-schedule"


class Stop(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.STOP
    kind: Literal["stop"] = "stop"


class Resume(_ChangeBase):
    field: ClassVar[ServiceField] = ServiceField.RESUME
    kind: Literal["resume"] = "resume"


Change = Annotated[
    Scale | SetRateLimit | ClearRateLimit | SetSchedule | ClearSchedule | Stop | Resume,
    Field(discriminator="kind"),
]
"""One planned change to one field of one service."""


class ApplyResult(_Frozen):
    """What `apply` did, for the operation journal: "why did it call the cloud?"."""

    change: Change
    call: str
    """The API call made, e.g. `ModifyModelServicePartialConfig` or `PUT .../property`."""
    request_id: str | None = None
    note: str | None = None
    """Anything the user should know, e.g. a fallback to a fuller update."""
