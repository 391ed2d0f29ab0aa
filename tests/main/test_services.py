"""The pure parts of main/services.py: what is kept of a body, and which changes wake a
reconciler (its own status write, echoed by the watch, must not)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudinfer.main.services import slim, wakes_reconciler


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "cloudinfer.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {
            "name": "chat", "namespace": "ns", "uid": "u1", "generation": 1,
            "resourceVersion": "10", "annotations": {"a": "1"}, "finalizers": [],
        },
        "spec": {"serviceId": "ms-1", "replicas": 2, "accountRef": {"name": "acct"}},
        "status": {"observedGeneration": 1},
    }  # fmt: skip
    for path, value in overrides.items():
        *parents, leaf = path.split("__")
        node = body
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return body


@pytest.mark.parametrize(
    ("change", "wakes"),
    [
        ({}, False),
        ({"metadata__resourceVersion": "11"}, False),
        ({"metadata__resourceVersion": "11", "status": {"observedGeneration": 2}}, False),
        ({"spec": {"serviceId": "ms-1", "replicas": 3, "accountRef": {"name": "acct"}}}, True),
        ({"metadata__generation": 2}, True),
        ({"metadata__annotations": {"a": "1", "cloudinfer.dev/wake-until": "x"}}, True),
        ({"metadata__finalizers": ["cloudinfer.dev/finalizer"]}, True),
        ({"metadata__deletionTimestamp": "2026-12-06T00:00:00Z"}, True),
        ({"metadata__labels": {"team": "a"}}, True),
    ],
)
def test_only_changes_beyond_status_and_resource_version_wake_the_reconciler(
    change: dict[str, Any], wakes: bool
) -> None:
    assert wakes_reconciler(slim(_body()), slim(_body(**change))) is wakes


def test_slim_drops_managed_fields_and_the_old_diff_base_only() -> None:
    body = _body(
        metadata__managedFields=[{"manager": "kubectl"}],
        metadata__annotations={"cloudinfer.dev/last-handled-configuration": "{}", "keep": "me"},
    )
    kept = slim(body)
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"keep": "me"}
    assert kept["spec"] == body["spec"] and kept["status"] == body["status"]
    assert "managedFields" in body["metadata"]  # the caller's body is not changed
