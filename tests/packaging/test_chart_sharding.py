"""The chart's sharding values: the flag, the Lease RBAC confined to one namespace, and more
than one replica without peering."""

from __future__ import annotations

from typing import Any

from packaging_support import Helm, by_kind, one, render

from cloudinfer.main.cli import settings_from

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
