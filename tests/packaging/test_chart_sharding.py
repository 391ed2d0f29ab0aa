"""The chart's sharding values: the flag, the Lease RBAC confined to one namespace, more than
one replica without peering, and (on the real apiserver) that the chart's RBAC suffices for a
sharded operator."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Kube, OperatorProcess, new_sim_account, writes
from kubernetes import client
from packaging_support import Helm, by_kind, one, render
from test_rbac import (
    RBAC_KINDS,
    forbidden_lines,
    release_leftovers,
    sa_kubeconfig,
)

from cloudinfer.main.cli import settings_from
from cloudinfer.main.sharding import ROLE_LABEL
from cloudsim.server import RunningSim
from support import Cluster

LEASE_VERBS = ["create", "delete", "list", "update"]


def operator_args(objects: list[dict[str, Any]]) -> list[str]:
    (operator,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return list(operator["args"])


def lease_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        role
        for role in by_kind(objects, "Role")
        if any("leases" in rule.get("resources", []) for rule in role["rules"])
    ]


def test_sharding_off_by_default_grants_no_leases(helm: Helm) -> None:
    objects = render(helm)
    assert not settings_from(operator_args(objects)).shard
    assert lease_roles(objects) == []


def test_sharding_runs_several_active_replicas_with_leases_in_the_release_namespace(
    helm: Helm,
) -> None:
    objects = render(helm, "sharding.enabled=true", "peering.enabled=false", "replicaCount=3")
    settings = settings_from(operator_args(objects))
    assert settings.shard
    assert not settings.peered
    assert settings.shard_namespace == ""  # the pod's own namespace, read at startup
    assert one(objects, "Deployment")["spec"]["replicas"] == 3
    (role,) = lease_roles(objects)
    (binding,) = [
        b
        for b in by_kind(objects, "RoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "cio-system"
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["coordination.k8s.io"]
    assert sorted(rule["verbs"]) == LEASE_VERBS


def test_a_lease_namespace_moves_the_role_and_reaches_the_operator(helm: Helm) -> None:
    objects = render(helm, "sharding.enabled=true", "sharding.leaseNamespace=ops")
    assert settings_from(operator_args(objects)).shard_namespace == "ops"
    (role,) = lease_roles(objects)
    assert role["metadata"]["namespace"] == "ops"


@pytest.fixture(scope="module")
def kube(api_client: client.ApiClient, cluster: Cluster, all_chart_crds: Path) -> Kube:
    return Kube(api_client, cluster)


def test_the_chart_rbac_suffices_for_a_sharded_operator(
    kube: Kube, helm: Helm, packaging_sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    """The operator with `--shard`, a token of the chart's ServiceAccount and only the
    chart's Roles: it takes its membership and the account's Leases, converges a service,
    and is refused nothing."""
    cluster = kube.cluster
    namespace = f"p-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", namespace)
    objects = render(
        helm, f"fullnameOverride=rbac-{namespace}", f"watchNamespaces={{{namespace}}}",
        "sharding.enabled=true", "peering.enabled=false",
        f"sharding.leaseNamespace={namespace}", release="rbac", namespace=namespace,
    )  # fmt: skip
    applied = [o for o in objects if o["kind"] in RBAC_KINDS]
    assert lease_roles(applied)
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(applied))
    sa = one(applied, "ServiceAccount")["metadata"]["name"]
    kubeconfig = sa_kubeconfig(cluster, namespace, sa, tmp_path / "sa.kubeconfig")
    args = [
        a for a in operator_args(objects)
        if not a.startswith(("--health-port", "--metrics-port", "--log-"))
    ]  # fmt: skip
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", args=tuple(args))
    try:
        operator.start()
        handle = new_sim_account(packaging_sims["tencent"], "tencent")
        service_id = handle.add_service(name="chat", replicas=1)
        kube.create_account(namespace, handle)
        kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 2})
        kube.wait_condition(namespace, "chat", reason="Converged", timeout=90)
        leases = client.CoordinationV1Api(kube.api).list_namespaced_lease(namespace).items
        roles = sorted((lease.metadata.labels or {}).get(ROLE_LABEL) for lease in leases)
        assert roles == ["account", "member"], roles
        assert len(writes(handle, "ModifyModelService")) == 1
        assert forbidden_lines(operator) == []
    finally:
        operator.stop()
        release_leftovers(kube, namespace)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
