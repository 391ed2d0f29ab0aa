"""The operator as users run it: real apiserver, simulators over loopback HTTP."""

from __future__ import annotations

import base64
import datetime

import pytest
from harness import Kube, OperatorProcess, converged_service, eventually, new_sim_account, writes
from scenarios import core_scenario

from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")

SCALE_ACTION = {"tencent": "ModifyModelService", "huawei": "UpdateServiceByProperty",
                "baidu": "ScaleService"}  # fmt: skip


@pytest.mark.parametrize("provider", ["tencent", "huawei", "baidu"])
def test_create_converges_and_status_tells_the_truth(
    kube: Kube, sims: dict[str, RunningSim], namespace: str, provider: str
) -> None:
    handle = new_sim_account(sims[provider], provider)
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 3})

    kube.wait_condition(namespace, "chat", reason="Converged", timeout=60)
    status = kube.get(namespace, "chat")["status"]
    assert status["observed"]["replicas"] == 3
    assert status["provider"] == provider
    assert status["observedGeneration"] == 1
    scale_calls = writes(handle, SCALE_ACTION[provider])
    assert len(scale_calls) == 1, scale_calls
    journal = status["journal"]
    assert journal[-1]["result"] == "Succeeded"
    assert journal[-1]["requestId"] == scale_calls[0]["request_id"]
    account_ready = kube.condition(namespace, "acct", plural="cloudaccounts")
    assert account_ready["reason"] == "CredentialsVerified"


def test_a_replicas_change_makes_exactly_one_scale_call(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, _service_id = converged_service(kube, sims["tencent"], "tencent", namespace, replicas=2)
    assert writes(handle, "ModifyModelService") == []

    kube.patch_service(namespace, "chat", {"spec": {"replicas": 4}})
    eventually(
        lambda: kube.get(namespace, "chat")["status"]["observedGeneration"] == 2,
        what="generation 2 observed",
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    calls = writes(handle, "ModifyModelService")
    assert [c["params"]["ServiceAction"] for c in calls] == ["SCALE"]
    assert calls[0]["params"]["Replicas"] == 4


@pytest.mark.parametrize(
    ("partial_config", "action"),
    [
        pytest.param("available", "ModifyModelServicePartialConfig", id="partial-config"),
        pytest.param("removed", "ModifyModelService", id="fallback-when-removed"),
    ],
)
def test_an_rps_change_makes_exactly_one_rate_limit_call(
    kube: Kube, sims: dict[str, RunningSim], namespace: str, partial_config: str, action: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent", partial_config=partial_config)
    service_id = handle.add_service(name="chat", replicas=2)
    kube.create_account(namespace, handle)
    rate = {"requestsPerSecond": 10, "scope": "PerInstance"}
    kube.create_service(namespace, "chat", {"serviceId": service_id, "rateLimit": rate})
    kube.wait_condition(namespace, "chat", reason="Converged")
    before = len(writes(handle, action))

    kube.patch_service(namespace, "chat", {"spec": {"rateLimit": {"requestsPerSecond": 25}}})
    eventually(
        lambda: (
            (kube.get(namespace, "chat")["status"].get("observed") or {})
            .get("rateLimit", {})
            .get("requestsPerSecond")
            == 25
        ),
        what="the new limit observed",
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    calls = writes(handle, action)[before:]
    assert len(calls) == 1, calls
    assert calls[0]["params"]["ServiceLimit"] == {
        "EnableInstanceRpsLimit": True,
        "InstanceRpsLimit": 25,
    }
    assert "ServiceAction" not in calls[0]["params"]  # never a scale or a restart
    assert writes(handle, "ModifyModelService" if action != "ModifyModelService" else "x") == []


def test_one_partial_config_per_service_carries_the_rps_limit_and_the_schedule(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    """Issue 19: both PartialConfig fields differ, so each service gets one call with both,
    and the journal shows one write that changed two fields."""
    handle = new_sim_account(sims["tencent"], "tencent")
    stop_at = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)).replace(
        microsecond=0
    )
    names = {}
    for i in range(3):
        service_id = handle.add_service(name=f"chat-{i}", replicas=2)
        names[service_id] = f"chat-{i}"
    kube.create_account(namespace, handle)
    for i, (service_id, name) in enumerate(names.items()):
        spec = {
            "serviceId": service_id,
            "rateLimit": {"requestsPerSecond": 10 + i, "scope": "PerInstance"},
            "stopSchedule": {"stopAt": stop_at.isoformat().replace("+00:00", "Z")},
        }
        kube.create_service(namespace, name, spec)
    for name in names.values():
        kube.wait_condition(namespace, name, reason="Converged", timeout=60)

    calls = writes(handle, "ModifyModelServicePartialConfig")
    assert sorted(c["params"]["ServiceId"] for c in calls) == sorted(names), calls
    when = stop_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for i, (service_id, name) in enumerate(names.items()):
        (call,) = [c for c in calls if c["params"]["ServiceId"] == service_id]
        assert call["params"] == {
            "ServiceId": service_id,
            "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 10 + i},
            "ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": when},
        }
        (entry,) = kube.get(namespace, name)["status"]["journal"]
        assert (entry["kinds"], entry["requestId"]) == (
            ["set-rate-limit", "set-schedule"],
            call["request_id"],
        )
    assert writes(handle, "ModifyModelService") == []


def test_console_drift_is_corrected_in_enforce_and_reported_in_observe_only(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    enforced = handle.add_service(name="enforced", replicas=2)
    observed = handle.add_service(name="observed", replicas=2)
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "enforced", {"serviceId": enforced, "replicas": 2})
    kube.create_service(
        namespace, "observed",
        {"serviceId": observed, "replicas": 2, "policy": {"mode": "ObserveOnly"}},
    )  # fmt: skip
    kube.wait_condition(namespace, "enforced", reason="Converged")
    kube.wait_condition(namespace, "observed", reason="Converged")

    sims["tencent"].control.edit_service(enforced, replicas=5, ready=5)
    sims["tencent"].control.edit_service(observed, replicas=5, ready=5)

    drift = kube.wait_condition(namespace, "observed", type_="Drifted", reason="ObserveOnly")
    assert "replicas: 5 -> 2" in drift["message"]
    kube.wait_condition(namespace, "enforced", reason="Converged", timeout=60)
    assert kube.get(namespace, "enforced")["status"]["observed"]["replicas"] == 2
    calls = writes(handle, "ModifyModelService")
    assert [c["params"].get("ServiceId") for c in calls] == [enforced]


def test_paused_annotation_stops_all_writes(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, _service_id = converged_service(kube, sims["tencent"], "tencent", namespace, replicas=2)
    kube.patch_service(
        namespace, "chat",
        {"metadata": {"annotations": {"cloudinfer.dev/paused": "true"}}, "spec": {"replicas": 3}},
    )  # fmt: skip
    paused = kube.wait_condition(namespace, "chat", status="False", reason="Paused")
    assert "replicas 2 -> 3" in paused["message"]
    assert writes(handle, "ModifyModelService") == []
    kube.patch_service(
        namespace, "chat", {"metadata": {"annotations": {"cloudinfer.dev/paused": None}}}
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    assert len(writes(handle, "ModifyModelService")) == 1


def test_missing_secret_then_created_recovers(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle, with_secret=False)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 1})
    account = kube.wait_condition(
        namespace, "acct", status="False", reason="SecretNotFound", plural="cloudaccounts"
    )
    assert "Secret creds not found" in account["message"]
    kube.wait_condition(namespace, "chat", status="False", reason="AccountNotReady")
    kube.create_secret(namespace, "creds", handle.key_id, handle.secret)
    kube.wait_condition(namespace, "chat", reason="Converged", timeout=60)


def test_wrong_credentials_are_auth_failed(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["huawei"], "huawei")
    service_id = handle.add_service(name="chat", replicas=1)
    handle.secret = "not-the-right-key"
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 1})
    kube.wait_condition(
        namespace, "acct", status="False", reason="AuthFailed", plural="cloudaccounts"
    )
    kube.wait_condition(namespace, "chat", status="False", reason="AuthFailed")


def test_a_deleted_cloud_service_is_service_not_found(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    _handle, service_id = converged_service(kube, sims["baidu"], "baidu", namespace, replicas=1)
    sims["baidu"].control.delete_service(service_id)
    gone = kube.wait_condition(namespace, "chat", status="False", reason="ServiceNotFound")
    assert service_id in gone["message"]


def test_kubectl_wait_for_ready_works(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle = new_sim_account(sims["tencent"], "tencent")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 2})
    kube.cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "--timeout=60s",
        "inferenceservices.cloudinfer.dev/chat",
    )  # fmt: skip
    table = kube.cluster.kubectl("get", "cis", "-n", namespace).stdout
    assert "tencent" in table and service_id in table and "Running" in table


def test_operator_metrics_are_exposed(operator_process: OperatorProcess) -> None:
    text = operator_process.metrics()
    assert "controller_runtime_reconcile_total" in text
    assert "cloudinfer_observe_duration_seconds" in text


def test_a_rotated_secret_takes_effect_without_a_restart(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, _service_id = converged_service(kube, sims["tencent"], "tencent", namespace, replicas=1)

    def set_secret(secret: str) -> None:
        encoded = base64.b64encode(secret.encode()).decode()
        kube.core.patch_namespaced_secret(
            "creds", namespace, {"data": {"secretAccessKey": encoded}}
        )

    set_secret("rotated-to-a-wrong-key")
    kube.wait_condition(
        namespace, "acct", status="False", reason="AuthFailed", plural="cloudaccounts"
    )
    set_secret(handle.secret)
    kube.wait_condition(namespace, "acct", reason="CredentialsVerified", plural="cloudaccounts")
    kube.wait_condition(namespace, "chat", reason="Converged")


def test_core_scenario_the_kind_suite_also_runs(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    core_scenario(kube, new_sim_account(sims["huawei"], "huawei"), namespace)
