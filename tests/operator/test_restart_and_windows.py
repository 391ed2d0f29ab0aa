"""An operator killed mid-convergence, and recurring stop windows firing on time."""

from __future__ import annotations

import datetime
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Kube, OperatorProcess, eventually, new_sim_account, writes
from kubernetes import client

from cloudsim.server import RunningSim
from support import Cluster


@pytest.fixture
def own_namespace(kube: Kube) -> Iterator[str]:
    """A namespace outside the session operator's t-* pattern."""
    name = f"r-{uuid.uuid4().hex[:10]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kube.core.delete_namespace(name)


def test_sigkill_mid_convergence_then_restart_makes_no_duplicate_writes(
    kube: Kube, sims: dict[str, RunningSim], own_namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    count = 12
    ids = [handle.add_service(name=f"svc{i}", replicas=1) for i in range(count)]
    kube.create_account(own_namespace, handle)
    # Slow writes so that the kill lands mid-way.
    kube.custom.patch_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", own_namespace, "cloudaccounts", "acct",
        {"spec": {"rateBudgets": {"writesPerSecond": 2}}},
    )  # fmt: skip
    for i, service_id in enumerate(ids):
        kube.create_service(
            own_namespace, f"svc{i}",
            {"serviceId": service_id, "replicas": 3,
             "rateLimit": {"requestsPerSecond": 7, "scope": "PerInstance"}},
        )  # fmt: skip
    args = ("--standalone", "--namespace", own_namespace)
    first = OperatorProcess(cluster.kubeconfig, tmp_path / "first.log", args=args)
    first.start()
    try:
        eventually(lambda: len(writes(handle, "ModifyModelService")) >= 3, timeout=60,
                   what="some scale calls")  # fmt: skip
    finally:
        first.stop(signal.SIGKILL)
    done_before_kill = len(writes(handle, "ModifyModelService"))
    assert done_before_kill < count, "the kill came too late to test anything"

    second = OperatorProcess(cluster.kubeconfig, tmp_path / "second.log", args=args)
    second.start()
    try:
        for i in range(count):
            kube.wait_condition(own_namespace, f"svc{i}", reason="Converged", timeout=120)
    finally:
        second.stop()
    scales = [w["params"]["ServiceId"] for w in writes(handle, "ModifyModelService")]
    assert sorted(scales) == sorted(ids), "each service must be scaled exactly once"
    limits = [w["params"]["ServiceId"] for w in writes(handle, "ModifyModelServicePartialConfig")]
    assert sorted(limits) == sorted(ids), "each limit must be set exactly once"


@pytest.mark.usefixtures("operator_process")
def test_a_recurring_window_stops_and_restarts_at_the_right_instants(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle)
    now = datetime.datetime.now(datetime.UTC)
    edge = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    if (edge - now).total_seconds() < 15:
        edge += datetime.timedelta(minutes=1)
    end = edge + datetime.timedelta(minutes=1)
    window = {"stop": f"{edge.minute} {edge.hour} * * *", "start": f"{end.minute} {end.hour} * * *"}
    kube.create_service(
        namespace, "chat",
        {"serviceId": service_id, "stopSchedule": {"timeZone": "UTC", "windows": [window]}},
    )  # fmt: skip
    kube.wait_condition(namespace, "chat", reason="Converged")
    upcoming = kube.get(namespace, "chat")["status"]["nextTransition"]
    assert upcoming == {"action": "Stop", "at": edge.strftime("%Y-%m-%dT%H:%M:%SZ"), "replicas": 0}

    kube.wait_condition(namespace, "chat", status="False", reason="ScheduledStop", timeout=100)
    stop = [
        w for w in writes(handle, "ModifyModelService") if w["params"]["ServiceAction"] == "STOP"
    ]
    assert len(stop) == 1
    assert edge.timestamp() <= stop[0]["time"] <= edge.timestamp() + 6
    assert kube.get(namespace, "chat")["status"]["nextTransition"]["action"] == "Start"

    kube.wait_condition(namespace, "chat", reason="Converged", timeout=100)
    resume = [
        w for w in writes(handle, "ModifyModelService") if w["params"]["ServiceAction"] == "RESUME"
    ]
    assert len(resume) == 1
    assert end.timestamp() <= resume[0]["time"] <= end.timestamp() + 6
