"""Deletion policies, schedules, throttling and steady state, with the operator running."""

from __future__ import annotations

import datetime
import time

import pytest
from harness import Kube, converged_service, eventually, new_sim_account, writes
from kubernetes.client.rest import ApiException

from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")


def _gone(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get(namespace, name)
    except ApiException as err:
        return err.status == 404
    return False


def _sim_service(sim: RunningSim, service_id: str) -> dict[str, object]:
    return dict(sim.control.service(service_id)["internal"])


def test_retain_leaves_the_cloud_service_untouched(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, service_id = converged_service(kube, sims["tencent"], "tencent", namespace, replicas=2)
    kube.custom.delete_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", namespace, "inferenceservices", "chat"
    )
    eventually(lambda: _gone(kube, namespace, "chat"), what="the resource to be released")
    time.sleep(2)
    assert writes(handle, "ModifyModelService") == []
    assert sims["tencent"].control.service(service_id)["service"]["Status"] == "Normal"


def test_stop_policy_stops_the_service_before_release_and_holds_while_the_cloud_fails(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="chat", replicas=2)
    kube.create_account(namespace, handle)
    kube.create_service(
        namespace, "chat",
        {"serviceId": service_id, "replicas": 2, "policy": {"onDelete": "Stop"}},
    )  # fmt: skip
    kube.wait_condition(namespace, "chat", reason="Converged")
    eventually(
        lambda: (
            "cloudinfer.dev/finalizer"
            in (kube.get(namespace, "chat")["metadata"].get("finalizers") or [])
        ),
        what="the finalizer",
    )
    fault = sim.control.inject("ModifyModelService", code="InternalError", account=handle.name)
    kube.custom.delete_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", namespace, "inferenceservices", "chat"
    )
    blocked = kube.wait_condition(namespace, "chat", status="False", reason="CloudUnreachable")
    assert "before release failed" in blocked["message"]
    assert not _gone(kube, namespace, "chat")

    sim.control.remove_fault(int(fault["id"]))
    eventually(lambda: _gone(kube, namespace, "chat"), timeout=60, what="release after stop")
    stops = [
        w for w in writes(handle, "ModifyModelService") if w["params"]["ServiceAction"] == "STOP"
    ]
    assert len(stops) == 1
    assert sim.control.service(service_id)["service"]["Status"] in ("Stopped", "Stopping")


def test_one_shot_stop_at_is_native_on_tione(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle)
    stop_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(
        seconds=8
    )
    kube.create_service(
        namespace,
        "chat",
        {"serviceId": service_id, "stopSchedule": {"stopAt": stop_at.isoformat()}},
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    calls = writes(handle, "ModifyModelServicePartialConfig")
    assert len(calls) == 1
    assert calls[0]["params"]["ScheduledAction"]["ScheduleStop"] is True
    kube.wait_condition(namespace, "chat", status="False", reason="ScheduledStop", timeout=40)
    # The cloud stopped it on its own schedule: no STOP call from the operator.
    assert writes(handle, "ModifyModelService") == []

    later = stop_at + datetime.timedelta(hours=1)
    kube.patch_service(namespace, "chat", {"spec": {"stopSchedule": {"stopAt": later.isoformat()}}})
    kube.wait_condition(namespace, "chat", reason="Converged", timeout=40)
    actions = [w["params"]["ServiceAction"] for w in writes(handle, "ModifyModelService")]
    assert actions == ["RESUME"]
    partial = writes(handle, "ModifyModelServicePartialConfig")
    assert len(partial) == 2, " | ".join(
        f"{w['time']:.1f} {w['params']['ScheduledAction']}" for w in partial
    )


def test_one_shot_stop_at_is_emulated_on_qianfan_at_the_right_instant(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["baidu"], "baidu")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle)
    stop_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=6)
    kube.create_service(
        namespace,
        "chat",
        {"serviceId": service_id, "stopSchedule": {"stopAt": stop_at.isoformat()}},
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    status = kube.get(namespace, "chat")["status"]
    assert status["capabilities"]["stopAt"] == "Emulated"
    kube.wait_condition(namespace, "chat", status="False", reason="ScheduledStop", timeout=40)
    calls = writes(handle, "DeactivateService")
    assert len(calls) == 1
    assert calls[0]["time"] >= stop_at.timestamp() - 0.5
    assert calls[0]["time"] <= stop_at.timestamp() + 5


def test_throttling_bursts_still_converge(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle = new_sim_account(sim, "tencent")
    ids = [handle.add_service(name=f"svc{i}", replicas=1) for i in range(5)]
    for action in ("ModifyModelService", "DescribeModelServiceGroups"):
        sim.control.inject(action, code="RequestLimitExceeded", count=4, account=handle.name)
    kube.create_account(namespace, handle)
    for i, service_id in enumerate(ids):
        kube.create_service(namespace, f"svc{i}", {"serviceId": service_id, "replicas": 2})
    for i in range(5):
        kube.wait_condition(namespace, f"svc{i}", reason="Converged", timeout=90)
    scales = writes(handle, "ModifyModelService")
    assert sorted(w["params"]["ServiceId"] for w in scales) == sorted(ids)


def test_steady_state_makes_no_kubernetes_writes_and_only_list_calls(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle = new_sim_account(sim, "tencent")
    count = 100
    ids = [handle.add_service(name=f"svc{i:03d}", replicas=1) for i in range(count)]
    kube.create_account(namespace, handle, poll=5)
    for i, service_id in enumerate(ids):
        kube.create_service(namespace, f"svc{i:03d}", {"serviceId": service_id, "replicas": 1})

    def all_ready() -> bool:
        items = kube.custom.list_namespaced_custom_object(
            "cloudinfer.dev", "v1alpha1", namespace, "inferenceservices"
        )["items"]
        return sum(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in (i.get("status") or {}).get("conditions", []))
            for i in items
        ) == count  # fmt: skip

    eventually(all_ready, timeout=120, what="all 100 services Ready")
    time.sleep(6)  # let the last status writes land

    def versions() -> dict[str, str]:
        listed = kube.custom.list_namespaced_custom_object(
            "cloudinfer.dev", "v1alpha1", namespace, "inferenceservices"
        )
        return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]}

    before = versions()
    lists_before = _calls_by(sim, handle.name, "DescribeModelServiceGroups")
    describes_before = _calls_by(sim, handle.name, "DescribeModelService")
    writes_before = len(writes(handle, "ModifyModelService"))
    time.sleep(16)  # three poll periods
    assert versions() == before, "the operator wrote to Kubernetes in steady state"
    lists = _calls_by(sim, handle.name, "DescribeModelServiceGroups") - lists_before
    assert 2 <= lists <= 5, lists  # one page of 100 per 5 s poll
    assert _calls_by(sim, handle.name, "DescribeModelService") == describes_before
    assert len(writes(handle, "ModifyModelService")) == writes_before


def _calls_by(sim: RunningSim, account: str, action: str) -> int:
    """Calls of `action` by one account (the journal keeps every call's entry)."""
    journal = sim.control.journal(action, entries=True)
    log = journal.get(action, {})
    return sum(1 for e in log.get("entries", log.get("writes", [])) if e["account"] == account)
