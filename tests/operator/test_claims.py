"""Two InferenceServices naming one cloud service: only the oldest writes; the other reports
ServiceClaimed naming it, and takes over when it is deleted (reconcile/claims.py)."""

from __future__ import annotations

import time

import pytest
from harness import Kube, eventually, new_sim_account
from kubernetes.client.rest import ApiException

from cloudinfer.main.services import MAX_IDLE_SECONDS
from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")

# Named so that the name tie-break would pick the younger one: only creation time decides.
OLDER, YOUNGER = "zz-older", "aa-younger"


def _scale_attempts(sim: RunningSim, account: str) -> list[int]:
    """Replicas asked for by every scale call of the account, failed ones included."""
    return [
        int(w["params"]["Replicas"])
        for w in sim.control.writes("ModifyModelService")
        if w.get("account") == account and w["params"].get("ServiceAction") == "SCALE"
    ]


def _gone(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get(namespace, name)
    except ApiException as err:
        return err.status == 404
    return False


def test_only_the_oldest_claimant_writes_and_the_next_takes_over_when_it_is_deleted(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="shared", replicas=1)
    # Both exist before the CloudAccount does, so both reconcilers see the cloud at once:
    # only the creation times can tell them apart.
    kube.create_service(namespace, OLDER, {"serviceId": service_id, "replicas": 2})
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    kube.create_service(namespace, YOUNGER, {"serviceId": service_id, "replicas": 3})
    created = [kube.get(namespace, n)["metadata"]["creationTimestamp"] for n in (OLDER, YOUNGER)]
    assert created[0] < created[1], created
    kube.create_account(namespace, handle)

    kube.wait_condition(namespace, OLDER, reason="Converged", timeout=90)
    claimed = kube.wait_condition(namespace, YOUNGER, status="False", reason="ServiceClaimed")
    assert f"InferenceService {namespace}/{OLDER}" in claimed["message"]
    synced = kube.condition(namespace, YOUNGER, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "ServiceClaimed")
    # The non-owner still shows what the cloud reports: the owner's replicas.
    eventually(
        lambda: kube.get(namespace, YOUNGER)["status"].get("observed", {}).get("replicas") == 2,
        what="the younger one's status to show the cloud's replicas",
    )
    # Steady: no status writes while nothing changes (the account polls every 5 s).
    version = kube.get(namespace, YOUNGER)["metadata"]["resourceVersion"]
    time.sleep(6)
    assert kube.get(namespace, YOUNGER)["metadata"]["resourceVersion"] == version
    assert _scale_attempts(sim, handle.name) == [2], "the younger one must not write"
    claim_events = [
        (e.type, e.count or 1)
        for e in kube.events(namespace)
        if e.involved_object.name == YOUNGER and e.reason == "ServiceClaimed"
    ]
    assert claim_events == [("Warning", 1)], "one Warning event per transition"

    kube.custom.delete_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", namespace, "inferenceservices", OLDER
    )
    eventually(lambda: _gone(kube, namespace, OLDER), what="the older one to be released")
    # Woken by the deletion: the next idle wake-up would come only after 300 s.
    assert MAX_IDLE_SECONDS > 150
    kube.wait_condition(namespace, YOUNGER, reason="Converged", timeout=150)
    assert kube.get(namespace, YOUNGER)["status"]["observed"]["replicas"] == 3
    assert _scale_attempts(sim, handle.name) == [2, 3]
