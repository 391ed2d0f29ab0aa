"""`select_instance`: which Qianfan compute-unit instance the plan and the scale act on."""

from __future__ import annotations

import pytest

from cloudinfer.cloud.instances import (
    InstanceNotFoundError,
    InstanceRequiredError,
    select_instance,
)
from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
    InstanceReplicas,
    ObservedService,
    Phase,
    Replicas,
    Support,
)

CAPS = Capabilities(
    replicas=Support.NATIVE,
    rate_limit=Support.READ_ONLY,
    schedule=Support.UNSUPPORTED,
    stop=Support.NATIVE,
    resume=Support.UNSUPPORTED,
)


def _observed(units: dict[str, int] | None) -> ObservedService:
    instances = None
    if units is not None:
        instances = tuple(
            InstanceReplicas(instance_id=iid, replicas=Replicas(desired=n, ready=n))
            for iid, n in units.items()
        )
    total = sum((units or {}).values()) or 7
    return ObservedService(
        cloud=Cloud.BAIDU,
        service_id="svco-1",
        replicas=Replicas(desired=total, ready=total),
        phase=Phase.RUNNING,
        raw_status="Serving",
        capabilities=CAPS,
        instances=instances,
    )


@pytest.mark.parametrize(
    ("units", "named", "expected"),
    [
        ({"cu-a": 1, "cu-b": 3}, "cu-b", ("cu-b", 3)),
        ({"cu-a": 1, "cu-b": 3}, "cu-a", ("cu-a", 1)),
        ({"cu-a": 2}, "cu-a", ("cu-a", 2)),
        ({"cu-a": 2}, None, ("cu-a", 2)),
    ],
    ids=["second-of-two", "first-of-two", "named-only-one", "unnamed-only-one"],
)
def test_the_named_or_only_instance_becomes_the_observed_replicas(
    units: dict[str, int], named: str | None, expected: tuple[str, int]
) -> None:
    observed = _observed(units)
    chosen = select_instance(observed, named, manages_replicas=True)
    assert (chosen.instance_id, chosen.replicas.desired, chosen.replicas.ready) == (
        expected[0],
        expected[1],
        expected[1],
    )
    # Everything else, the list of instances included, is the cloud's observation.
    assert chosen.instances == observed.instances
    assert chosen.model_copy(update={"replicas": observed.replicas, "instance_id": None}) == (
        observed
    )


@pytest.mark.parametrize("manages_replicas", [True, False])
@pytest.mark.parametrize(
    "units", [{"cu-a": 1, "cu-b": 3}, {"cu-a": 1}, {}], ids=["two", "one", "none"]
)
def test_an_instance_the_service_lacks_is_not_found_and_named(
    units: dict[str, int], manages_replicas: bool
) -> None:
    with pytest.raises(InstanceNotFoundError) as caught:
        select_instance(_observed(units), "cu-typo", manages_replicas=manages_replicas)
    assert caught.value.instance_id == "cu-typo"
    message = str(caught.value)
    assert "cu-typo" in message and "svco-1" in message
    assert all(iid in message for iid in units)


def test_several_instances_and_none_named_is_refused_when_replicas_are_managed() -> None:
    with pytest.raises(InstanceRequiredError, match=r"2 compute-unit instances \(cu-a, cu-b\)"):
        select_instance(_observed({"cu-a": 1, "cu-b": 3}), None, manages_replicas=True)


def test_no_instance_at_all_cannot_have_its_replicas_managed() -> None:
    with pytest.raises(InstanceNotFoundError, match="no compute-unit instance") as caught:
        select_instance(_observed({}), None, manages_replicas=True)
    assert caught.value.instance_id is None


@pytest.mark.parametrize("units", [{"cu-a": 1, "cu-b": 3}, {}], ids=["two", "none"])
def test_without_replicas_an_unnamed_instance_is_not_needed(units: dict[str, int]) -> None:
    """A stop or an observe-only service needs no instance: the observation stays whole."""
    observed = _observed(units)
    assert select_instance(observed, None, manages_replicas=False) == observed


@pytest.mark.parametrize("named", [None, "cu-a"])
def test_clouds_that_scale_the_whole_service_are_left_alone(named: str | None) -> None:
    """spec.baidu is ignored on TI-ONE and ModelArts (no per-instance scaling there)."""
    observed = _observed(None)
    assert select_instance(observed, named, manages_replicas=True) == observed
