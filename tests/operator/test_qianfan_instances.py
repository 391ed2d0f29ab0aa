"""Qianfan services on several compute-unit instances: spec.baidu.instanceId picks the one
ScaleService acts on (real apiserver, the Qianfan simulator over loopback)."""

from __future__ import annotations

from typing import Any

import pytest
from harness import CloudAccountHandle, Kube, new_sim_account, writes

from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")


def scale_attempts(handle: CloudAccountHandle) -> list[dict[str, Any]]:
    """Every ScaleService call of this account, refused ones included."""
    return [
        entry
        for entry in handle.sim.control.writes("ScaleService")
        if entry.get("account") == handle.name
    ]


def two_instance_service(handle: CloudAccountHandle) -> tuple[str, str, str]:
    """A service on the account's own instance (1 replica) and a second one (2 replicas)."""
    first, second = handle.compute_unit, f"{handle.compute_unit}-b"
    service_id = handle.add_service(name="chat", units={first: 1, second: 2})
    return service_id, first, second


def test_the_named_instance_is_scaled_and_no_other(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["baidu"], "baidu")
    service_id, first, second = two_instance_service(handle)
    kube.create_account(namespace, handle)
    spec = {"serviceId": service_id, "replicas": 4, "baidu": {"instanceId": second}}
    kube.create_service(namespace, "chat", spec)

    kube.wait_condition(namespace, "chat", reason="Converged", timeout=60)
    calls = writes(handle, "ScaleService")
    assert [c["params"] for c in calls] == [
        {"serviceId": service_id, "instanceId": second, "deploymentReplicasCount": 4}
    ]
    assert all(c["params"]["instanceId"] == second for c in scale_attempts(handle))
    assert handle.sim.control.service(service_id)["internal"]["units"] == {first: 1, second: 4}
    status = kube.get(namespace, "chat")["status"]
    assert status["observed"]["replicas"] == 4
    assert status["observed"]["instances"] == [
        {"instanceId": first, "replicas": 1},
        {"instanceId": second, "replicas": 4},
    ]
    entry = status["journal"][-1]
    assert (entry["action"], entry["requestId"]) == ("ScaleService", calls[0]["request_id"])
    assert f"instance {second}" in entry["change"]


def test_a_missing_or_unnamed_instance_holds_every_call_until_the_spec_names_one(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["baidu"], "baidu")
    service_id, first, second = two_instance_service(handle)
    kube.create_account(namespace, handle)
    spec = {"serviceId": service_id, "replicas": 3, "baidu": {"instanceId": "cu-nosuch"}}
    kube.create_service(namespace, "chat", spec)

    missing = kube.wait_condition(namespace, "chat", status="False", reason="InstanceNotFound")
    assert "cu-nosuch" in missing["message"]
    assert first in missing["message"] and second in missing["message"]
    observed = kube.get(namespace, "chat")["status"]["observed"]
    assert [i["instanceId"] for i in observed["instances"]] == [first, second]
    warnings = [e for e in kube.events(namespace) if e.reason == "InstanceNotFound"]
    assert warnings and warnings[0].type == "Warning"

    # Two instances and none named: the operator does not guess which one replicas means.
    kube.patch_service(namespace, "chat", {"spec": {"baidu": None}})
    unnamed = kube.wait_condition(namespace, "chat", status="False", reason="InvalidSpec")
    assert "spec.baidu.instanceId" in unnamed["message"]
    assert scale_attempts(handle) == []
    assert handle.sim.control.service(service_id)["internal"]["units"] == {first: 1, second: 2}

    kube.patch_service(namespace, "chat", {"spec": {"baidu": {"instanceId": first}}})
    kube.wait_condition(namespace, "chat", reason="Converged", timeout=60)
    assert [c["params"] for c in scale_attempts(handle)] == [
        {"serviceId": service_id, "instanceId": first, "deploymentReplicasCount": 3}
    ]
    assert handle.sim.control.service(service_id)["internal"]["units"] == {first: 3, second: 2}
