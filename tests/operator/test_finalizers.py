"""Which finalizers the operator keeps (main/services.py): `cloudinfer.dev/finalizer` only on an
InferenceService with `policy.onDelete: Stop`, Kopf's `cloudinfer.dev/account-observer` on a
CloudAccount, and the old Kopf finalizer of earlier versions removed where nothing needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import (
    GROUP,
    VERSION,
    CloudAccountHandle,
    Kube,
    OperatorProcess,
    eventually,
    new_sim_account,
    writes,
)
from test_deletion import restart_namespace  # noqa: F401 - the fixture

from cloudsim.server import RunningSim
from support import Cluster

FINALIZER = "cloudinfer.dev/finalizer"
OBSERVER = "cloudinfer.dev/account-observer"


def _finalizers(
    kube: Kube, namespace: str, name: str, plural: str = "inferenceservices"
) -> list[str]:
    return list(kube.get(namespace, name, plural)["metadata"].get("finalizers") or [])


def _kept_and_stopped(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> tuple[CloudAccountHandle, str, str]:
    """A CloudAccount `acct` and two services asking for 2 replicas: `kept` (Retain, the
    default) and `stopped` (onDelete: Stop); their cloud service IDs."""
    handle = new_sim_account(sims["tencent"], "tencent")
    ids = {name: handle.add_service(name=name, replicas=1) for name in ("kept", "stopped")}
    kube.create_account(namespace, handle)
    for name, policy in (("kept", {}), ("stopped", {"policy": {"onDelete": "Stop"}})):
        kube.create_service(namespace, name, {"serviceId": ids[name], "replicas": 2, **policy})
    return handle, ids["kept"], ids["stopped"]


def _stops(handle: CloudAccountHandle) -> list[str]:
    return [
        w["params"]["ServiceId"]
        for w in writes(handle, "ModifyModelService")
        if w["params"]["ServiceAction"] == "STOP"
    ]


@pytest.mark.usefixtures("operator_process")
def test_only_a_stop_on_delete_service_carries_the_finalizer(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, _, _ = _kept_and_stopped(kube, sims, namespace)
    kube.wait_condition(namespace, "kept", reason="Converged")
    kube.wait_condition(namespace, "stopped", reason="Converged")
    eventually(
        lambda: FINALIZER in _finalizers(kube, namespace, "stopped"), what="Stop's finalizer"
    )
    assert _finalizers(kube, namespace, "kept") == []  # Retain: nothing holds its deletion
    account = _finalizers(kube, namespace, "acct", "cloudaccounts")
    assert OBSERVER in account and FINALIZER not in account

    kube.patch_service(namespace, "stopped", {"spec": {"policy": {"onDelete": "Retain"}}})
    eventually(lambda: _finalizers(kube, namespace, "stopped") == [], what="the finalizer removed")
    kube.patch_service(namespace, "stopped", {"spec": {"policy": {"onDelete": "Stop"}}})
    eventually(lambda: FINALIZER in _finalizers(kube, namespace, "stopped"), what="it again")

    # A Retain service goes at once and its cloud service is not stopped.
    kube.custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", "kept"
    )
    eventually(lambda: not _exists(kube, namespace, "kept"), what="kept to be gone")
    assert _stops(handle) == []


def _exists(kube: Kube, namespace: str, name: str) -> bool:
    listed = kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", field_selector=f"metadata.name={name}"
    )
    return bool(listed["items"])


def _add_old_finalizer(kube: Kube, namespace: str, plural: str, name: str) -> None:
    body: dict[str, Any] = {"metadata": {"finalizers": [FINALIZER]}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)


def test_the_old_kopf_finalizer_is_removed_where_nothing_needs_it(
    kube: Kube, sims: dict[str, RunningSim], restart_namespace: str,  # noqa: F811
    cluster: Cluster, tmp_path: Path,
) -> None:  # fmt: skip
    """Objects as an earlier version left them, with Kopf's finalizer on every InferenceService
    and CloudAccount: the operator keeps it only on the Stop-on-delete service, so deleting the
    others (and the account, once that service is gone) is not held up."""
    ns = restart_namespace
    handle, _, stopped = _kept_and_stopped(kube, sims, ns)
    for plural, name in (
        ("cloudaccounts", "acct"),
        ("inferenceservices", "kept"),
        ("inferenceservices", "stopped"),
    ):
        _add_old_finalizer(kube, ns, plural, name)

    operator = OperatorProcess(
        cluster.kubeconfig, tmp_path / "operator.log", args=("--standalone", "--namespace", ns)
    )
    operator.start()
    try:
        eventually(lambda: _finalizers(kube, ns, "kept") == [], timeout=60, what="kept released")
        eventually(
            lambda: FINALIZER not in _finalizers(kube, ns, "acct", "cloudaccounts"),
            timeout=60, what="the account's old finalizer removed",
        )  # fmt: skip
        assert FINALIZER in _finalizers(kube, ns, "stopped")
        kube.wait_condition(ns, "stopped", reason="Converged")
        kube.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "inferenceservices", "kept")
        eventually(lambda: not _exists(kube, ns, "kept"), what="kept to be gone")
        assert _stops(handle) == []
        kube.custom.delete_namespaced_custom_object(
            GROUP, VERSION, ns, "inferenceservices", "stopped"
        )
        eventually(lambda: not _exists(kube, ns, "stopped"), timeout=60, what="stopped to be gone")
        assert _stops(handle) == [stopped]
    finally:
        operator.stop()
        print(operator.log_tail())
