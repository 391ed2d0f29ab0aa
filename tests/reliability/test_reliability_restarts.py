"""Process-level faults: the operator SIGKILLed and restarted, the apiserver restarted with its
etcd data kept, etcd itself restarted with its data kept, and two peered replicas of which
only one may write."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from harness import writes
from invariants import wait_outcome
from scenario import Scenario, report_figure, wait_until
from scenario import services as _services

from support import Cluster

ETCD_DOWNTIME_SECONDS = 2.0
"""Between stop and start; etcd's own graceful stop with the apiserver connected adds ~7 s."""
SERVICES = 12
"""At 1 write/s, the scales span the etcd outage."""
RECOVERY_TIMEOUT = 180
"""A generous bound that only a stalled operator misses; the time it took is reported
(`report_figure`), not asserted."""
PEERING_CRD = (
    Path(__file__).resolve().parents[2]
    / "charts"
    / "cloudinfer-operator"
    / "crds"
    / "kopf.dev_kopfpeerings.yaml"
)


def test_sigkill_mid_convergence_and_restart(scenario: Scenario) -> None:
    handle = scenario.account("baidu")
    expected = _services(scenario, handle, 8)
    scenario.kube.custom.patch_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", scenario.ns, "cloudaccounts", "acct",
        {"spec": {"rateBudgets": {"writesPerSecond": 2}}},
    )  # fmt: skip
    first = scenario.operator()
    wait_until(lambda: len(writes(handle, "ScaleService")) >= 2, what="some scale calls")
    scenario.stop_operator(first, signal.SIGKILL)
    before = len(writes(handle, "ScaleService"))
    assert before < 8, "the kill came too late to test anything"
    # A user edit while no operator runs.
    scenario.edit("svc7", {"spec": {"replicas": 3}})
    scenario.operator()
    scenario.finish(expected, timeout=120)
    by_service: dict[str, list[int]] = {}
    for w in writes(handle, "ScaleService"):
        by_service.setdefault(w["params"]["serviceId"], []).append(
            w["params"]["deploymentReplicasCount"]
        )
    svc7 = scenario.kube.get(scenario.ns, "svc7")["spec"]["serviceId"]
    assert by_service.pop(svc7) in ([3], [2, 3])
    assert list(by_service.values()) == [[2]] * 7, by_service


def test_apiserver_restarted_during_reconciliation(scenario: Scenario, cluster: Cluster) -> None:
    if cluster.plane is None:
        pytest.skip("an external cluster: its apiserver is not ours to restart")
    handle = scenario.account("tencent")
    expected = _services(scenario, handle, 8)
    scenario.kube.custom.patch_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", scenario.ns, "cloudaccounts", "acct",
        {"spec": {"rateBudgets": {"writesPerSecond": 2}}},
    )  # fmt: skip
    operator = scenario.operator()
    wait_until(lambda: len(writes(handle, "ModifyModelService")) >= 2, what="some scale calls")
    down = time.monotonic()
    cluster.plane.restart_apiserver()
    # Shared with the whole session: make sure it is really back before anyone goes on.
    wait_until(
        lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
        timeout=60, what="the apiserver's /readyz",
    )  # fmt: skip
    back = time.monotonic()
    pending = wait_outcome(scenario.kube, scenario.ns, expected, timeout=RECOVERY_TIMEOUT)
    report_figure(
        "apiserver restart",
        f"/readyz {back - down:.1f} s after the restart began; every service Converged "
        f"{time.monotonic() - back:.1f} s after /readyz",
    )
    assert not pending, f"convergence stalled after the restart: {pending}"
    # Kopf restarts a crashed daemon only after 60 s: the account observer must not crash.
    scenario.finish(expected)
    assert len(writes(handle, "ModifyModelService")) == 8
    assert operator.process is not None and operator.process.poll() is None


def test_etcd_restarted_during_reconciliation(scenario: Scenario, cluster: Cluster) -> None:
    """etcd stops for about 10 s mid-convergence and comes back with its data: the apiserver's
    requests fail and its watches break meanwhile. The operator survives, its watches resume
    (an edit made after the restart is applied), and nothing is written twice."""
    if cluster.plane is None:
        pytest.skip("an external cluster: its etcd is not ours to restart")
    handle = scenario.account("baidu")
    expected = _services(scenario, handle, SERVICES)
    scenario.kube.custom.patch_namespaced_custom_object(
        "cloudinfer.dev", "v1alpha1", scenario.ns, "cloudaccounts", "acct",
        {"spec": {"rateBudgets": {"writesPerSecond": 1}}},
    )  # fmt: skip
    operator = scenario.operator()
    wait_until(lambda: len(writes(handle, "ScaleService")) >= 2, what="some scale calls")
    before = len(writes(handle, "ScaleService"))
    stopping = time.monotonic()
    cluster.plane.restart_etcd(downtime=ETCD_DOWNTIME_SECONDS)
    outage = time.monotonic() - stopping
    during = len(writes(handle, "ScaleService")) - before
    wait_until(
        lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
        timeout=60, what="the apiserver's /readyz after the etcd restart",
    )  # fmt: skip
    back = time.monotonic()
    assert before < SERVICES - 2, "the restart came too late to test anything"
    # Cloud writes go on while status writes fail: the in-memory journal must keep them.
    scenario.edit("svc7", {"spec": {"replicas": 3}})
    pending = wait_outcome(scenario.kube, scenario.ns, expected, timeout=RECOVERY_TIMEOUT)
    report_figure(
        "etcd restart",
        f"etcd out {outage:.1f} s (scales before: {before}, during: {during}); every service "
        f"Converged, the edit included, {time.monotonic() - back:.1f} s after /readyz",
    )
    assert not pending, f"convergence stalled after the restart: {pending}"
    scenario.finish(expected)
    by_service: dict[str, list[int]] = {}
    for w in writes(handle, "ScaleService"):
        by_service.setdefault(w["params"]["serviceId"], []).append(
            w["params"]["deploymentReplicasCount"]
        )
    svc7 = scenario.kube.get(scenario.ns, "svc7")["spec"]["serviceId"]
    assert by_service.pop(svc7) in ([3], [2, 3])
    assert list(by_service.values()) == [[2]] * (SERVICES - 1), by_service
    assert operator.process is not None and operator.process.poll() is None


def test_two_peered_replicas_only_one_writes(scenario: Scenario) -> None:
    scenario.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD))
    scenario.cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "-f", str(PEERING_CRD)
    )
    scenario.kube.custom.create_namespaced_custom_object(
        "kopf.dev", "v1", scenario.ns, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "rel"}},
    )  # fmt: skip
    handle = scenario.account("tencent")
    peering = ("--peering", "rel")
    high = scenario.operator(*peering, "--priority", "2", standalone=False)
    low = scenario.operator(*peering, "--priority", "1", standalone=False)

    def peers() -> dict[str, object]:
        obj = scenario.kube.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", scenario.ns, "kopfpeerings", "rel"
        )
        return dict(obj.get("status") or {})

    wait_until(lambda: len(peers()) == 2, what="both replicas in the peering object")
    time.sleep(1)  # the lower-priority replica reads the peering and stays paused
    assert "Resuming operations" not in low.log_path.read_text()
    expected = _services(scenario, handle, 4)
    scenario.freeze_specs()
    scenario.finish(expected)
    assert len(writes(handle, "ModifyModelService")) == 4
    low_log, high_log = low.log_path.read_text(), high.log_path.read_text()
    assert "cloud write:" not in low_log, "the paused replica wrote"
    assert high_log.count("cloud write:") == 4

    # The active replica leaves cleanly (SIGTERM drops its peering record); the other resumes.
    scenario.stop_operator(high)
    scenario.edit("svc0", {"spec": {"replicas": 5}})
    scenario.finish(expected, timeout=60)
    assert low.log_path.read_text().count("cloud write:") == 1
    assert [w["params"]["Replicas"] for w in writes(handle, "ModifyModelService")][-1] == 5
