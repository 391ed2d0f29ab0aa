"""Choosing the instance a per-instance cloud scales (Qianfan compute units), before planning.

On Qianfan, `ScaleService` sets the replicas of one compute-unit instance of a service, and
a service may use several. `select_instance` narrows an observation to the instance the spec
names, so the planner compares `spec.replicas` with that instance's replicas and the provider
scales that instance and no other. Pure: no I/O, so a wrong name costs no cloud call.
"""

from __future__ import annotations

from cloudinfer.cloud.model import ObservedService


class InstanceSelectionError(ValueError):
    """The spec and the service's instances do not pick exactly one instance."""


class InstanceNotFoundError(InstanceSelectionError):
    """The spec names an instance the service does not have (or it has none to scale)."""

    def __init__(self, message: str, *, instance_id: str | None) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class InstanceRequiredError(InstanceSelectionError):
    """The service has several instances and the spec, which manages replicas, names none."""


def _listed(ids: list[str]) -> str:
    return ", ".join(ids) if ids else "none"


def select_instance(
    observed: ObservedService, instance_id: str | None, *, manages_replicas: bool
) -> ObservedService:
    """`observed` narrowed to `instance_id`, or to the only instance when none is named.

    Unchanged on clouds that scale the whole service (`observed.instances` is None), and when
    no instance is named and replicas are not managed (stop needs no instance).
    """
    if observed.instances is None:
        return observed
    ids = [unit.instance_id for unit in observed.instances]
    sid = observed.service_id
    if instance_id is not None:
        chosen = next((u for u in observed.instances if u.instance_id == instance_id), None)
        if chosen is None:
            raise InstanceNotFoundError(
                f"compute-unit instance {instance_id} is not part of service {sid} (its "
                f"instances: {_listed(ids)}); fix spec.baidu.instanceId",
                instance_id=instance_id,
            )
    elif not manages_replicas:
        return observed
    elif len(ids) == 1:
        chosen = observed.instances[0]
    elif not ids:
        raise InstanceNotFoundError(
            f"service {sid} has no compute-unit instance whose replicas could be managed",
            instance_id=None,
        )
    else:
        raise InstanceRequiredError(
            f"service {sid} has {len(ids)} compute-unit instances ({_listed(ids)}): set "
            "spec.baidu.instanceId to the one spec.replicas applies to"
        )
    return observed.model_copy(
        update={"replicas": chosen.replicas, "instance_id": chosen.instance_id}
    )
