"""The cloud-neutral model: what the operator observes of a service and what it may change.

Providers translate each cloud's fields into these types
(docs/clouds/README.md#cross-cloud-differences); the planner compares them with the desired
state without knowing which cloud it talks to.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Re-exported: one vocabulary with the API, whose values users read in status.
from cloudinfer.api.inferenceservice import Phase as Phase  # noqa: PLC0414
from cloudinfer.api.inferenceservice import RateLimitScope as RateLimitScope  # noqa: PLC0414
from cloudinfer.api.inferenceservice import Support as Support  # noqa: PLC0414


class Cloud(StrEnum):
    TENCENT = "tencent"
    HUAWEI = "huawei"
    BAIDU = "baidu"


class ServiceField(StrEnum):
    """The fields of a service the operator manages."""

    REPLICAS = "replicas"
    RATE_LIMIT = "rateLimit"
    SCHEDULE = "schedule"
    STOP = "stop"
    RESUME = "resume"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Capabilities(_Frozen):
    """Per cloud operation, how this cloud (and account) supports it, and why if not natively.
    status.capabilities (`api.inferenceservice.SpecCapabilities`) is derived from it per spec
    field (reconcile/status.py)."""

    replicas: Support
    rate_limit: Support
    schedule: Support
    stop: Support
    resume: Support
    notes: dict[ServiceField, str] = Field(default_factory=dict)
    """Why a field is not native, for the user (e.g. "v1 has no RPS-limit field")."""
    one_call: tuple[frozenset[ServiceField], ...] = ()
    """Groups of fields one call can change together (TI-ONE's PartialConfig takes the RPS
    limit and the scheduled stop in one request): the planner sends one `Combined` change
    for the fields of a group that differ."""

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
    service_id: str = Field(min_length=1)
    reason: str = ""
    """Why the planner wants this change, for the operation journal."""


class _FieldChange(_ChangeBase):
    """A change to one field."""

    field: ClassVar[ServiceField]

    @property
    def fields(self) -> tuple[ServiceField, ...]:
        return (self.field,)


class Scale(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.REPLICAS
    kind: Literal["scale"] = "scale"
    replicas: int = Field(ge=0)


class SetRateLimit(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.RATE_LIMIT
    kind: Literal["set-rate-limit"] = "set-rate-limit"
    rps: float = Field(gt=0)
    scope: RateLimitScope


class ClearRateLimit(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.RATE_LIMIT
    kind: Literal["clear-rate-limit"] = "clear-rate-limit"


SCHEDULE_TOLERANCE: Final = timedelta(seconds=90)
"""An observed scheduled stop this close to the desired instant matches it. ModelArts takes a
duration in whole minutes, so the due time it computes is up to 60 s after the instant asked
for; the other 30 s cover the time between the operator reading its clock and the cloud
reading its own (budget pacing, network, clock skew)."""


class SetSchedule(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.SCHEDULE
    kind: Literal["set-schedule"] = "set-schedule"
    stop_at: AwareDatetime
    """The absolute time to stop at; providers of relative schedules convert it."""


class ClearSchedule(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.SCHEDULE
    kind: Literal["clear-schedule"] = "clear-schedule"


class Stop(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.STOP
    kind: Literal["stop"] = "stop"


class Resume(_FieldChange):
    field: ClassVar[ServiceField] = ServiceField.RESUME
    kind: Literal["resume"] = "resume"


FieldChange = Annotated[
    Scale | SetRateLimit | ClearRateLimit | SetSchedule | ClearSchedule | Stop | Resume,
    Field(discriminator="kind"),
]
"""One planned change to one field of one service."""


class Combined(_ChangeBase):
    """Changes to several fields of one service that one call makes together (see
    `Capabilities.one_call`): one write, which the ledger records as changing each field."""

    kind: Literal["combined"] = "combined"
    parts: tuple[FieldChange, ...] = Field(min_length=2)

    @property
    def fields(self) -> tuple[ServiceField, ...]:
        return tuple(part.field for part in self.parts)


def combine(parts: tuple[FieldChange, ...]) -> Combined:
    """One write for `parts` (changes to distinct fields of one service)."""
    if len({part.service_id for part in parts}) != 1:
        raise ValueError("a combined change acts on one service")
    if len({part.field for part in parts}) != len(parts):
        raise ValueError("a combined change changes each field once")
    return Combined(
        service_id=parts[0].service_id,
        reason="; ".join(part.reason or part.kind for part in parts),
        parts=parts,
    )


Change = Annotated[
    Scale | SetRateLimit | ClearRateLimit | SetSchedule | ClearSchedule | Stop | Resume | Combined,
    Field(discriminator="kind"),
]
"""One planned write: a change to one field, or to several fields in one call."""


class ApplyResult(_Frozen):
    """What `apply` did, for the operation journal: "why did it call the cloud?"."""

    change: Change
    call: str
    """The API call made, e.g. `ModifyModelServicePartialConfig` or `PUT .../property`."""
    request_id: str | None = None
    note: str | None = None
    """Anything the user should know, e.g. a fallback to a fuller update."""
