"""The real apiserver enforces the generated CRDs: examples apply, bad input is refused clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import Cluster

pytestmark = pytest.mark.usefixtures("cloudinfer_crds")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SERVICE: dict[str, Any] = {
    "apiVersion": "cloudinfer.dev/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "svc"},
    "spec": {
        "accountRef": {"name": "acct"},
        "serviceId": "ms-abc-1",
        "replicas": 2,
        "rateLimit": {"requestsPerSecond": 10, "scope": "PerInstance"},
        "stopSchedule": {
            "timeZone": "Europe/Berlin",
            "windows": [{"stop": "0 20 * * 1-5", "start": "0 8 * * 1-5"}],
        },
    },
}
ACCOUNT: dict[str, Any] = {
    "apiVersion": "cloudinfer.dev/v1alpha1",
    "kind": "CloudAccount",
    "metadata": {"name": "acct"},
    "spec": {
        "provider": "huawei",
        "region": "cn-north-4",
        "projectId": "p123",
        "credentialsSecretRef": {"name": "creds"},
    },
}


def _apply(cluster: Cluster, namespace: str, manifest: dict[str, Any], *extra: str) -> str:
    """Server-side dry-run apply; returns stderr ('' when accepted)."""
    result = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "--dry-run=server",
        *extra,
        "-f",
        "-",
        check=False,
        input_text=json.dumps(manifest),
    )
    return "" if result.returncode == 0 else result.stderr


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (or removed for ...)."""
    manifest = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = manifest
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is ...:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return manifest


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_accepted(cluster: Cluster, namespace: str, example: Path) -> None:
    for doc in yaml.safe_load_all(example.read_text()):
        assert _apply(cluster, namespace, doc) == ""


@pytest.mark.parametrize("manifest", [SERVICE, ACCOUNT], ids=["service", "account"])
def test_the_table_base_manifests_are_valid(
    cluster: Cluster, namespace: str, manifest: dict[str, Any]
) -> None:
    assert _apply(cluster, namespace, manifest) == ""


S, A = SERVICE, ACCOUNT
BAD_INPUT = [
    # (manifest, message the person sees)
    (
        _with(S, "spec.replicas", "two"),
        'spec.replicas: Invalid value: "string": spec.replicas in '
        'body must be of type integer: "string"',
        "replicas-wrong-type",
    ),
    (
        _with(S, "spec.replicas", -1),
        "spec.replicas: Invalid value: -1: spec.replicas in body "
        "should be greater than or equal to 1",
        "replicas-negative",
    ),
    (_with(S, "spec.replicas", 0), "should be greater than or equal to 1", "replicas-zero"),
    (_with(S, "spec.replicas", 129), "should be less than or equal to 128", "replicas-too-many"),
    (_with(S, "spec.accountRef", ...), "spec.accountRef: Required value", "missing-accountRef"),
    (_with(S, "spec.baidu", {}), "spec.baidu.instanceId: Required value", "baidu-without-instance"),
    (
        _with(S, "spec.baidu.instanceId", "cu a"),
        "spec.baidu.instanceId in body should match",
        "instanceId-space",
    ),
    (_with(S, "spec.serviceId", ...), "spec.serviceId: Required value", "missing-serviceId"),
    (
        _with(S, "spec.serviceId", "x" * 129),
        "spec.serviceId: Too long: may not be more than 128 bytes",
        "serviceId-oversized",
    ),
    (
        _with(S, "spec.serviceId", "ms abc"),
        "spec.serviceId in body should match",
        "serviceId-space",
    ),
    (
        _with(S, "spec.accountRef.name", "Bad_Name"),
        "spec.accountRef.name in body should match",
        "accountRef-not-a-name",
    ),
    (
        _with(S, "spec.rateLimit.requestsPerSecond", 0),
        "spec.rateLimit.requestsPerSecond in body should be greater than 0",
        "rps-zero",
    ),
    (_with(S, "spec.rateLimit.requestsPerSecond", -5), "should be greater than 0", "rps-negative"),
    (
        _with(S, "spec.rateLimit.scope", "PerPod"),
        "spec.rateLimit.scope: Unsupported value: "
        '"PerPod": supported values: "PerInstance", "PerService"',
        "scope-unknown-enum",
    ),
    (
        _with(S, "spec.rateLimit", {"requestsPerSecond": 5}),
        "requestsPerSecond requires a scope: PerInstance or PerService",
        "rps-without-scope",
    ),
    (
        _with(S, "spec.rateLimit", {"scope": "PerService", "unlimited": True}),
        "scope requires requestsPerSecond",
        "scope-without-rps",
    ),
    (
        _with(
            S, "spec.rateLimit", {"requestsPerSecond": 5, "scope": "PerService", "unlimited": True}
        ),
        "set either requestsPerSecond or unlimited: true, not both",
        "rps-and-unlimited",
    ),
    (
        _with(S, "spec.rateLimit", {}),
        "set requestsPerSecond (with scope), or unlimited: true to turn the limit off",
        "rateLimit-empty",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0.stop", "every evening"),
        "spec.stopSchedule.windows[0].stop in body should match",
        "cron-malformed",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0.start", "30 18 * *"),
        "spec.stopSchedule.windows[0].start in body should match",
        "cron-four-fields",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0", {"stop": "0 20 * * *"}),
        "spec.stopSchedule.windows[0].start: Required value",
        "window-without-start",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0", {"stop": "0 20 * * *", "start": "0 20 * * *"}),
        'stop and start must differ, both are "0 20 * * *"',
        "window-stop-equals-start",
    ),
    (
        _with(S, "spec.stopSchedule.timeZone", "Mars/Olympus_Mons"),
        'unknown time zone "Mars/Olympus_Mons"; use an IANA name such as Europe/Berlin',
        "unknown-time-zone",
    ),
    (
        _with(S, "spec.stopSchedule.stopAt", "tomorrow at noon"),
        "spec.stopSchedule.stopAt in body must be of type date-time",
        "stopAt-not-a-time",
    ),
    (
        _with(S, "spec.stopSchedule.windows", [{"stop": "0 1 * * *", "start": "0 2 * * *"}] * 9),
        "spec.stopSchedule.windows: Too many: 9: must have at most 8 items",
        "too-many-windows",
    ),
    (
        _with(S, "spec.stopSchedule.skipDates", ["2026-12-25", "Christmas"]),
        'spec.stopSchedule.skipDates[1]: Invalid value: "Christmas": "Christmas" is not a date '
        "(YYYY-MM-DD) or a range of dates (YYYY-MM-DD/YYYY-MM-DD)",
        "skipDate-not-a-date",
    ),
    (
        _with(S, "spec.stopSchedule.skipDates", ["2026-02-30"]),
        'spec.stopSchedule.skipDates[0]: Invalid value: "2026-02-30": "2026-02-30" is not a date',
        "skipDate-no-such-day",
    ),
    (
        _with(S, "spec.stopSchedule.skipDates", ["2026-12-24/2026-13-01"]),
        '"2026-12-24/2026-13-01" is not a date',
        "skipDate-range-no-such-month",
    ),
    (
        _with(S, "spec.stopSchedule.skipDates", ["2026-12-31/2026-12-24"]),
        'spec.stopSchedule.skipDates[0]: Invalid value: "2026-12-31/2026-12-24": the range '
        '"2026-12-31/2026-12-24" ends before it starts',
        "skipDate-range-inverted",
    ),
    (
        _with(S, "spec.stopSchedule.skipDates", ["2026-01-01"] * 367),
        "spec.stopSchedule.skipDates: Too many: 367: must have at most 366 items",
        "too-many-skipDates",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0.replicas", 3),
        "spec.stopSchedule.windows: Invalid value: stopSchedule.windows[].replicas "
        "must not exceed spec.replicas: a window runs fewer replicas, not more",
        "tier-above-replicas",
    ),
    (
        _with(_with(S, "spec.stopSchedule.windows.0.replicas", 1), "spec.replicas", ...),
        "spec.stopSchedule.windows: Invalid value: stopSchedule.windows[].replicas "
        "needs spec.replicas",
        "tier-without-replicas",
    ),
    (
        _with(S, "spec.stopSchedule.windows.0.replicas", -1),
        "spec.stopSchedule.windows[0].replicas in body should be greater than or equal to 0",
        "tier-negative",
    ),
    (
        _with(S, "spec.policy", {"mode": "Yolo"}),
        'spec.policy.mode: Unsupported value: "Yolo"',
        "policy-mode-unknown",
    ),
    (
        _with(S, "spec.policy", {"onDelete": "Delete"}),
        'spec.policy.onDelete: Unsupported value: "Delete": supported values: "Retain", "Stop"',
        "onDelete-unknown",
    ),
    (
        _with(S, "spec.suspend", "yes"),
        "spec.suspend in body must be of type boolean",
        "suspend-wrong-type",
    ),
    (
        _with(S, "spec.apiKey", "sk-live-123"),
        'unknown field "spec.apiKey"',
        "inline-secret-service",
    ),
    (
        _with(A, "spec.provider", "aws"),
        'spec.provider: Unsupported value: "aws": supported values: "tencent", "huawei", "baidu"',
        "provider-unknown",
    ),
    (
        _with(A, "spec.projectId", ...),
        "projectId is required when provider is huawei",
        "huawei-without-project",
    ),
    (
        _with(A, "spec.credentialsSecretRef", ...),
        "spec.credentialsSecretRef: Required value",
        "missing-credentials-ref",
    ),
    (
        _with(A, "spec.secretAccessKey", "hunter2"),
        'unknown field "spec.secretAccessKey"',
        "inline-secret-account",
    ),
    (
        _with(A, "spec.credentialsSecretRef.secretAccessKey", "hunter2"),
        'unknown field "spec.credentialsSecretRef.secretAccessKey"',
        "inline-secret-in-ref",
    ),
    (
        _with(A, "spec.endpoint", "not a url"),
        "endpoint must be an absolute http(s) URL, got: not a url",
        "endpoint-not-a-url",
    ),
    (
        _with(A, "spec.endpoint", "ftp://example.com"),
        "endpoint must be an absolute http(s) URL",
        "endpoint-wrong-scheme",
    ),
    (
        _with(A, "spec.region", "r" * 65),
        "spec.region: Too long: may not be more than 64 bytes",
        "region-oversized",
    ),
    (
        _with(A, "spec.pollIntervalSeconds", 1),
        "spec.pollIntervalSeconds in body should be greater than or equal to 5",
        "poll-too-fast",
    ),
    (
        _with(A, "spec.activePollIntervalSeconds", 60),
        "activePollIntervalSeconds must not exceed pollIntervalSeconds",
        "active-poll-slower-than-steady",
    ),
    (
        _with(A, "spec.rateBudgets", {"writesPerSecond": 0}),
        "spec.rateBudgets.writesPerSecond in body should be greater than 0",
        "budget-zero",
    ),
]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [pytest.param(m, msg, id=case) for m, msg, case in BAD_INPUT],
)
def test_bad_input_is_refused_with_a_clear_message(
    cluster: Cluster, namespace: str, manifest: dict[str, Any], message: str
) -> None:
    error = _apply(cluster, namespace, manifest)
    assert error, "the apiserver accepted an invalid manifest"
    assert message in error, error


def test_tiers_and_skip_dates_within_bounds_are_accepted(cluster: Cluster, namespace: str) -> None:
    tiered = _with(S, "spec.stopSchedule.windows", [
        {"stop": "0 20 * * *", "start": "0 8 * * *", "replicas": 2},
        {"stop": "0 22 * * *", "start": "0 6 * * *", "replicas": 1},
        {"stop": "0 18 * * 5", "start": "0 8 * * 1", "replicas": 0},
    ])  # fmt: skip
    dated = _with(tiered, "spec.stopSchedule.skipDates", [
        "2028-02-29", "2026-12-24/2026-12-26", "2026-12-31/2026-12-31",
    ])  # fmt: skip
    assert _apply(cluster, namespace, dated) == ""
    assert (
        _apply(cluster, namespace, _with(S, "spec.stopSchedule.skipDates", ["2026-01-01"] * 366))
        == ""
    )


def test_bad_input_table_is_large_enough() -> None:
    assert len(BAD_INPUT) >= 25


def test_service_id_is_immutable(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(SERVICE))
    error = _apply(cluster, namespace, _with(SERVICE, "spec.serviceId", "ms-other-1"))
    assert "serviceId is immutable (was ms-abc-1); delete and recreate" in error


def test_provider_is_immutable(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(ACCOUNT))
    changed = _with(ACCOUNT, "spec.provider", "tencent")
    assert "provider is immutable (was huawei)" in _apply(cluster, namespace, changed)


def test_server_fills_policy_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(SERVICE))
    stored = json.loads(cluster.kubectl("get", "cis", "svc", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["policy"] == {"mode": "Enforce", "onDelete": "Retain"}
    assert stored["spec"]["suspend"] is False


def test_kubectl_explain_prints_field_descriptions(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "inferenceservices.cloudinfer.dev.spec.rateLimit").stdout
    assert "Requests-per-second limit" in out
    assert "requestsPerSecond" in out
    assert "PerInstance (TI-ONE InstanceRpsLimit)" in out


def test_kubectl_scale_changes_spec_replicas(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(SERVICE))
    cluster.kubectl("scale", "-n", namespace, "cis/svc", "--replicas=5")
    stored = json.loads(cluster.kubectl("get", "cis", "svc", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["replicas"] == 5
    refused = cluster.kubectl("scale", "-n", namespace, "cis/svc", "--replicas=0", check=False)
    assert refused.returncode != 0
    assert "should be greater than or equal to 1" in refused.stderr


def test_kubectl_get_shows_the_printer_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(SERVICE))
    header = cluster.kubectl("get", "cis", "-n", namespace).stdout.splitlines()[0].split()
    assert header == [
        "NAME",
        "CLOUD",
        "SERVICE-ID",
        "DESIRED",
        "READY-REPLICAS",
        "RPS",
        "STATE",
        "READY",
        "AGE",
    ]
    categories = cluster.kubectl("get", "cloudinfer", "-n", namespace).stdout
    assert "inferenceservice.cloudinfer.dev/svc" in categories


def test_kubectl_selects_services_by_their_account(cluster: Cluster, namespace: str) -> None:
    """The CRD's selectableFields: what a sharded replica lists when it gains an account."""
    for name, account in (("first", "a"), ("second", "b"), ("third", "a")):
        manifest = _with(_with(SERVICE, "metadata.name", name), "spec.accountRef.name", account)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(manifest))
    selected = cluster.kubectl(
        "get", "cis", "-n", namespace, "--field-selector", "spec.accountRef.name=a",
        "-o", "jsonpath={.items[*].metadata.name}",
    ).stdout.split()  # fmt: skip
    assert sorted(selected) == ["first", "third"]
