"""status.observed for a Qianfan service: the chosen instance's replicas, and every instance."""

from __future__ import annotations

from cloudinfer.api.inferenceservice import MAX_OBSERVED_INSTANCES, ObservedState
from cloudinfer.cloud.baidu.parse import observed_service
from cloudinfer.cloud.instances import select_instance
from cloudinfer.cloud.payload import Payload
from cloudinfer.reconcile.status import observed_block


def _qianfan(units: list[tuple[str, int]]) -> Payload:
    service = {
        "serviceId": "svco-1",
        "runStatus": "Serving",
        "resourceConfig": {"replicasCount": sum(n for _, n in units), "qps": 5},
        "computeUnits": [{"instanceId": i, "deploymentReplicasCount": n} for i, n in units],
    }
    return Payload(service, "baidu", "DescribeService", "req-1")


def test_observed_shows_the_chosen_instance_and_every_instance() -> None:
    observed = observed_service(_qianfan([("cu-a", 1), ("cu-b", 3)]))
    block = observed_block(select_instance(observed, "cu-b", manages_replicas=True))
    assert (block["replicas"], block["readyReplicas"]) == (3, 3)
    assert block["instances"] == [
        {"instanceId": "cu-a", "replicas": 1},
        {"instanceId": "cu-b", "replicas": 3},
    ]
    ObservedState.model_validate(block)  # the CRD's own model accepts it


def test_before_an_instance_is_chosen_replicas_are_the_services_total() -> None:
    block = observed_block(observed_service(_qianfan([("cu-a", 1), ("cu-b", 3)])))
    assert block["replicas"] == 4
    assert len(block["instances"]) == 2


def test_instances_are_cut_to_what_the_crd_allows() -> None:
    units = [(f"cu-{i:03d}", 1) for i in range(MAX_OBSERVED_INSTANCES + 5)]
    block = observed_block(observed_service(_qianfan(units)))
    assert [i["instanceId"] for i in block["instances"]] == [
        i for i, _ in units[:MAX_OBSERVED_INSTANCES]
    ]
    ObservedState.model_validate(block)


def test_a_service_without_instances_has_no_instances_field() -> None:
    assert "instances" not in observed_block(observed_service(_qianfan([])))
