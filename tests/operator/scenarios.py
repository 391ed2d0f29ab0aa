"""Scenarios shared by the integration suite (local control plane) and the kind suite."""

from __future__ import annotations

from harness import CloudAccountHandle, Kube, eventually, writes

SCALE_ACTION = {"tencent": "ModifyModelService", "huawei": "UpdateServiceByProperty",
                "baidu": "ScaleService"}  # fmt: skip


def core_scenario(
    kube: Kube, handle: CloudAccountHandle, namespace: str, *, endpoint: str | None = None
) -> None:
    """Create -> converge, then a replicas change makes exactly one more scale call."""
    service_id = handle.add_service(name="core", replicas=1)
    kube.create_account(namespace, handle, endpoint=endpoint)
    kube.create_service(namespace, "core", {"serviceId": service_id, "replicas": 2})
    kube.wait_condition(namespace, "core", reason="Converged", timeout=120)
    assert len(writes(handle, SCALE_ACTION[handle.provider])) == 1

    kube.patch_service(namespace, "core", {"spec": {"replicas": 3}})
    eventually(
        lambda: kube.get(namespace, "core")["status"]["observedGeneration"] == 2,
        timeout=60,
        what="generation 2 observed",
    )
    kube.wait_condition(namespace, "core", reason="Converged", timeout=120)
    assert kube.get(namespace, "core")["status"]["observed"]["replicas"] == 3
    assert len(writes(handle, SCALE_ACTION[handle.provider])) == 2
