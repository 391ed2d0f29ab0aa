"""Translating ModelArts v1 service objects into the neutral model
(docs/clouds/huawei-modelarts.md#field-map).

The v1 list has no `config`/`instance_count`; replicas come from a detail read, which the
provider caches per service and refreshes only when the list's `update_time` moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
    ObservedService,
    Phase,
    Replicas,
    ServiceField,
    Support,
)
from cloudinfer.cloud.payload import Payload

PHASES: Final[Mapping[str, Phase]] = {
    "running": Phase.RUNNING,
    "concerning": Phase.RUNNING,  # serving, with some instances abnormal
    "deploying": Phase.TRANSITIONING,
    "pending": Phase.TRANSITIONING,
    "waiting": Phase.TRANSITIONING,  # queued for resources
    "stopping": Phase.TRANSITIONING,
    "deleting": Phase.TRANSITIONING,
    "stopped": Phase.STOPPED,
    "finished": Phase.STOPPED,  # batch services only
    "failed": Phase.FAILED,
    "abnormal": Phase.FAILED,
}
"""v1 `status` values (docs/clouds/huawei-modelarts.md#field-map) to neutral phases."""

CAPABILITIES: Final = Capabilities(
    replicas=Support.NATIVE,
    rate_limit=Support.UNSUPPORTED,
    schedule=Support.NATIVE,
    stop=Support.NATIVE,
    resume=Support.NATIVE,
    notes={
        ServiceField.RATE_LIMIT: (
            "the ModelArts v1 API has no RPS-limit field; the v2 update that has one creates "
            "a new service version, so it is not used"
        ),
        ServiceField.SCHEDULE: (
            "v1 schedules are relative durations; the desired stop time is converted and "
            "compared with the observed due_time so that re-applying never moves it"
        ),
    },
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """What only the detail read tells: the `config[]` entries (model versions)."""

    config: tuple[Mapping[str, Any], ...]

    @property
    def instance_count(self) -> int:
        return sum(int(entry["instance_count"]) for entry in self.config)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(str(entry["model_id"]) for entry in self.config)


def deployment(detail: Payload) -> Deployment:
    entries = detail.objects("config")
    for entry in entries:
        entry.integer("instance_count", minimum=0)
        entry.string("model_id")
    return Deployment(config=tuple(entry.data for entry in entries))


def observed_service(item: Payload, found: Deployment | None) -> ObservedService:
    """The neutral view of a list item (or detail) plus the deployment read from the detail."""
    status = item.optional_string("status") or ""
    phase = PHASES.get(status, Phase.UNKNOWN)
    desired = found.instance_count if found is not None else None
    # v1 exposes no ready count (docs/clouds/huawei-modelarts.md#field-map); running means all
    # instances serve.
    ready = (
        {Phase.RUNNING: desired, Phase.STOPPED: 0}.get(phase) if status != "concerning" else None
    )
    due = item.optional_epoch_ms("due_time")
    updated = [
        t
        for t in (item.optional_epoch_ms("update_time"), item.optional_epoch_ms("transition_at"))
        if t
    ]
    keys = {"update_time": str(item.data.get("update_time", ""))}
    if found is not None:
        keys["model_ids"] = ",".join(found.model_ids)
    return ObservedService(
        cloud=Cloud.HUAWEI,
        service_id=item.string("service_id"),
        name=item.optional_string("service_name"),
        replicas=Replicas(desired=desired, ready=ready),
        rate_limit=None,
        scheduled_stop=due,
        phase=phase,
        raw_status=status,
        message=item.optional_string("error_msg"),
        updated_at=max(updated) if updated else None,
        capabilities=CAPABILITIES,
        cloud_keys=keys,
    )
