"""Deleting what `policy.onDelete: Stop` needs: whole namespaces, the bound on a stop the cloud
refuses, the in-use finalizers, and an operator restarted mid-deletion.

The namespace controller of the test control plane (controlplane/launcher.py) deletes a
namespace's contents as in a real cluster: everything at once, in no order.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
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
from kubernetes import client
from kubernetes.client.rest import ApiException

from cloudsim.server import RunningSim
from support import Cluster

IN_USE = "cloudinfer.dev/in-use"
RECORD = "cloudinfer.dev/in-use-refs"
NAMESPACE_GONE_SECONDS = 60


def _namespace_gone(kube: Kube, name: str) -> bool:
    try:
        kube.core.read_namespace(name)
    except ApiException as err:
        return err.status == 404
    return False


@pytest.fixture
def doomed_namespace(kube: Kube) -> Iterator[str]:
    """A t-* namespace the test deletes itself (the session operator serves it); if the test
    failed before, whatever blocks it is released so that it does not linger."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    if not _namespace_gone(kube, name):
        release_everything(kube, name)
        kube.core.delete_namespace(name)


@pytest.fixture
def restart_namespace(kube: Kube) -> Iterator[str]:
    """A namespace outside the session operator's t-* pattern, for an operator of its own."""
    name = f"r-{uuid.uuid4().hex[:10]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    if not _namespace_gone(kube, name):
        release_everything(kube, name)
        kube.core.delete_namespace(name)


def release_everything(kube: Kube, namespace: str) -> None:
    """Drop every finalizer the operator may have left (a failed test's cleanup)."""
    for plural in ("inferenceservices", "cloudaccounts"):
        listed = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        for item in listed["items"]:
            with contextlib.suppress(ApiException):
                kube.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )  # fmt: skip
    for secret in kube.core.list_namespaced_secret(namespace).items:
        if secret.metadata.finalizers:
            kube.core.patch_namespaced_secret(
                secret.metadata.name, namespace, {"metadata": {"finalizers": None}}
            )
    for config_map in kube.core.list_namespaced_config_map(namespace).items:
        if config_map.metadata.finalizers:
            kube.core.patch_namespaced_config_map(
                config_map.metadata.name, namespace, {"metadata": {"finalizers": None}}
            )


def cluster_ca_pem(cluster: Cluster) -> str:
    """A real CA certificate (the control plane's), as a caBundleRef's content."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    return base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


def stop_policy_service(
    kube: Kube, sim: RunningSim, namespace: str, *, on_delete: str = "Stop"
) -> tuple[CloudAccountHandle, str]:
    """Secret, CA ConfigMap, CloudAccount and an InferenceService `chat` (Converged)."""
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="chat", replicas=2)
    kube.core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cloud-ca"),
            data={"ca.crt": cluster_ca_pem(kube.cluster)},
        ),
    )
    kube.create_account(namespace, handle)
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "cloudaccounts", "acct",
        {"spec": {"caBundleRef": {"name": "cloud-ca", "key": "ca.crt"}}},
    )  # fmt: skip
    kube.create_service(
        namespace, "chat",
        {"serviceId": service_id, "replicas": 2, "policy": {"onDelete": on_delete}},
    )  # fmt: skip
    kube.wait_condition(namespace, "chat", reason="Converged")
    return handle, service_id


def finalizers(kube: Kube, namespace: str, kind: str, name: str) -> list[str]:
    try:
        if kind == "Secret":
            meta: Any = kube.core.read_namespaced_secret(name, namespace).metadata
            return list(meta.finalizers or [])
        if kind == "ConfigMap":
            meta = kube.core.read_namespaced_config_map(name, namespace).metadata
            return list(meta.finalizers or [])
        obj = kube.get(namespace, name, "cloudaccounts")
    except ApiException as err:
        if err.status == 404:
            return []
        raise
    return list(obj["metadata"].get("finalizers") or [])


HELD = (("CloudAccount", "acct"), ("Secret", "creds"), ("ConfigMap", "cloud-ca"))


def wait_held(kube: Kube, namespace: str, held: bool) -> None:
    def matches() -> bool:
        return all((IN_USE in finalizers(kube, namespace, k, n)) == held for k, n in HELD)

    eventually(matches, what=f"in-use finalizers {'on' if held else 'off'} in {namespace}")


def stops(handle: CloudAccountHandle) -> list[dict[str, Any]]:
    """Successful STOP calls of the account, from the simulator's journal."""
    return [
        w for w in writes(handle, "ModifyModelService") if w["params"]["ServiceAction"] == "STOP"
    ]


def abandoned(operator: OperatorProcess) -> float:
    match = re.search(
        r'^cloudinfer_stop_on_delete_total\{result="abandoned"\} (\S+)$',
        operator.metrics(),
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


@pytest.mark.usefixtures("operator_process")
def test_deleting_the_namespace_stops_the_service_once_and_the_namespace_goes(
    kube: Kube, sims: dict[str, RunningSim], doomed_namespace: str
) -> None:
    ns = doomed_namespace
    sim = sims["tencent"]
    handle, service_id = stop_policy_service(kube, sim, ns)
    wait_held(kube, ns, held=True)
    record = kube.get(ns, "acct", "cloudaccounts")["metadata"]["annotations"][RECORD]
    assert sorted(json.loads(record)) == ["ConfigMap/cloud-ca", "Secret/creds"]

    kube.core.delete_namespace(ns)
    eventually(
        lambda: _namespace_gone(kube, ns), timeout=NAMESPACE_GONE_SECONDS,
        what="the namespace to be gone",
    )  # fmt: skip
    assert len(stops(handle)) == 1, stops(handle)
    assert sim.control.service(service_id)["service"]["Status"] in ("Stopped", "Stopping")


@pytest.mark.usefixtures("operator_process")
def test_a_stop_the_cloud_refuses_is_abandoned_after_the_bound_and_the_namespace_goes(
    kube: Kube, sims: dict[str, RunningSim], doomed_namespace: str,
    operator_process: OperatorProcess,
) -> None:  # fmt: skip
    ns = doomed_namespace
    sim = sims["tencent"]
    handle, service_id = stop_policy_service(kube, sim, ns)
    wait_held(kube, ns, held=True)
    before = abandoned(operator_process)
    fault = sim.control.inject("ModifyModelService", code="InternalError", account=handle.name)
    try:
        kube.core.delete_namespace(ns)
        # The bound is 30 s of attempts; the namespace controller then needs its next pass.
        eventually(lambda: _namespace_gone(kube, ns), timeout=120, what="the namespace to go")
    finally:
        sim.control.remove_fault(int(fault["id"]))
    assert stops(handle) == []
    refused = [w for w in sim.control.writes("ModifyModelService") if w["account"] == handle.name]
    assert refused, "the STOP was attempted"
    assert sim.control.service(service_id)["service"]["Status"] == "Normal"
    assert abandoned(operator_process) == before + 1
    log = operator_process.log_path.read_text(errors="replace")
    assert f"cloud service {service_id} was NOT stopped" in log


@pytest.mark.usefixtures("operator_process")
def test_a_refused_stop_of_one_resource_gives_a_warning_event_and_releases_it(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle, _ = stop_policy_service(kube, sim, namespace)
    wait_held(kube, namespace, held=True)
    fault = sim.control.inject("ModifyModelService", code="InternalError", account=handle.name)
    try:
        kube.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferenceservices", "chat"
        )
        eventually(lambda: _gone(kube, namespace, "chat"), timeout=90, what="the release")
    finally:
        sim.control.remove_fault(int(fault["id"]))
    assert stops(handle) == []
    warnings = [
        e for e in kube.events(namespace)
        if e.involved_object.name == "chat" and e.reason == "ReleasedWithoutStop"
    ]  # fmt: skip
    assert len(warnings) == 1, warnings
    assert warnings[0].type == "Warning"
    assert "NOT stopped" in warnings[0].message
    # Nothing needs the account any more: the holds go, the record too.
    wait_held(kube, namespace, held=False)
    annotations = kube.get(namespace, "acct", "cloudaccounts")["metadata"].get("annotations") or {}
    assert RECORD not in annotations


def _gone(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get(namespace, name)
    except ApiException as err:
        return err.status == 404
    return False


@pytest.mark.usefixtures("operator_process")
def test_in_use_holds_follow_the_services_that_need_them(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    stop_policy_service(kube, sim, namespace, on_delete="Retain")
    # Retain needs nothing at deletion: nothing is held.
    assert all(IN_USE not in finalizers(kube, namespace, k, n) for k, n in HELD)

    kube.patch_service(namespace, "chat", {"spec": {"policy": {"onDelete": "Stop"}}})
    wait_held(kube, namespace, held=True)

    # The CloudAccount names another Secret: that one is held, the old one released.
    kube.create_secret(namespace, "creds2", "AKIDunused", "unused")
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "cloudaccounts", "acct",
        {"spec": {"credentialsSecretRef": {"name": "creds2"}}},
    )  # fmt: skip
    eventually(
        lambda: IN_USE in finalizers(kube, namespace, "Secret", "creds2")
        and IN_USE not in finalizers(kube, namespace, "Secret", "creds"),
        what="the hold to move to the new Secret",
    )  # fmt: skip
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "cloudaccounts", "acct",
        {"spec": {"credentialsSecretRef": {"name": "creds"}}},
    )  # fmt: skip
    wait_held(kube, namespace, held=True)
    eventually(
        lambda: IN_USE not in finalizers(kube, namespace, "Secret", "creds2"),
        what="the new Secret released again",
    )  # fmt: skip

    kube.patch_service(namespace, "chat", {"spec": {"policy": {"onDelete": "Retain"}}})
    wait_held(kube, namespace, held=False)
    annotations = kube.get(namespace, "acct", "cloudaccounts")["metadata"].get("annotations") or {}
    assert RECORD not in annotations

    # A CloudAccount with no Stop dependents is deleted at once.
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "cloudaccounts", "acct")
    eventually(
        lambda: _account_gone(kube, namespace), timeout=60, what="the CloudAccount to go"
    )  # fmt: skip


def _account_gone(kube: Kube, namespace: str) -> bool:
    try:
        kube.get(namespace, "acct", "cloudaccounts")
    except ApiException as err:
        return err.status == 404
    return False


def test_an_operator_restarted_mid_deletion_stops_once_and_releases_everything(
    kube: Kube, sims: dict[str, RunningSim], restart_namespace: str, cluster: Cluster,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Killed, then everything deleted as the namespace controller would (all at once): the
    restarted operator finds the CloudAccount already being deleted (Kopf starts no observer
    for it) and still stops the service, then lets everything go. (The namespace itself is
    not deleted here: Kopf does not serve a namespace of --namespace that is already
    terminating when it starts; docs/install.md.)"""
    ns = restart_namespace
    sim = sims["tencent"]
    args = ("--standalone", "--namespace", ns)
    first = OperatorProcess(cluster.kubeconfig, tmp_path / "first.log", args=args)
    first.start()
    try:
        handle, service_id = stop_policy_service(kube, sim, ns)
        wait_held(kube, ns, held=True)
    finally:
        first.stop(signal.SIGKILL)
    kube.core.delete_namespaced_secret("creds", ns)
    kube.core.delete_namespaced_config_map("cloud-ca", ns)
    for plural, name in (("cloudaccounts", "acct"), ("inferenceservices", "chat")):
        kube.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, plural, name)
    # With no operator, nothing goes: the Secret is still there for the stop.
    assert kube.core.read_namespaced_secret("creds", ns).metadata.deletion_timestamp
    assert stops(handle) == []

    second = OperatorProcess(cluster.kubeconfig, tmp_path / "second.log", args=args)
    second.start()
    try:
        eventually(lambda: _all_gone(kube, ns), timeout=60, what="everything to be released")
    finally:
        second.stop()
    assert len(stops(handle)) == 1, stops(handle)
    assert sim.control.service(service_id)["service"]["Status"] in ("Stopped", "Stopping")


def _all_gone(kube: Kube, namespace: str) -> bool:
    secrets = kube.core.list_namespaced_secret(namespace, field_selector="metadata.name=creds")
    cas = kube.core.list_namespaced_config_map(namespace, field_selector="metadata.name=cloud-ca")
    return (
        not secrets.items and not cas.items
        and _account_gone(kube, namespace) and _gone(kube, namespace, "chat")
    )  # fmt: skip
