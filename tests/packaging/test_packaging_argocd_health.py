"""The Argo CD health checks, run with Lua 5.1 (Argo CD's gopher-lua dialect) over their
testdata, exactly as Argo CD's own `util/lua/health_test.go` runs the built-in checks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51
from packaging_support import ARGOCD, HEALTH_DIR, KINDS

from cloudinfer.api.conditions import ConditionType, Reason

# Scripts installed through argocd-cm get base, table and package only: no string, math,
# io, os or debug library, and no string methods. Strip them so a script that relies on
# them fails here as it would in Argo CD.
SANDBOX = """
getmetatable("").__index = nil
string, math, io, os, debug, coroutine, require, dofile, loadfile = nil
"""

# The status contract (docs/gitops.md): the health of Ready=False for each reason. A new
# reason in conditions.py fails test_every_reason_is_classified until it is added here
# and, when it is not Degraded, to the Lua tables.
EXPECTED_FOR_READY_FALSE = {
    Reason.CONVERGING: "Progressing",
    Reason.CLOUD_THROTTLED: "Progressing",
    Reason.CLOUD_UNREACHABLE: "Progressing",
    Reason.PENDING_OBSERVATION: "Progressing",
    Reason.AUTH_FAILED: "Degraded",
    Reason.INVALID_SPEC: "Degraded",
    Reason.UNSUPPORTED_BY_CLOUD: "Degraded",
    Reason.ACCOUNT_NOT_READY: "Degraded",
    Reason.SERVICE_NOT_FOUND: "Degraded",
    Reason.INSTANCE_NOT_FOUND: "Degraded",
    Reason.SECRET_NOT_FOUND: "Degraded",
    Reason.ENDPOINT_NOT_ALLOWED: "Degraded",
    Reason.CLOUD_REJECTED: "Degraded",
    Reason.PERMISSION_DENIED: "Degraded",
    Reason.CLOUD_SERVICE_FAILED: "Degraded",
    Reason.PLATFORM_STOPPED: "Degraded",
    Reason.QUOTA_EXCEEDED: "Degraded",
    Reason.SERVICE_CLAIMED: "Degraded",
    Reason.SUSPENDED: "Suspended",
    Reason.SCHEDULED_STOP: "Suspended",
    Reason.PAUSED: "Suspended",
    Reason.OBSERVE_ONLY: "Suspended",
    Reason.STOPPED_OUTSIDE_OPERATOR: "Suspended",
}
# Reasons of healthy outcomes: they come with Ready=True (or on Synced / Drifted=False).
HEALTHY_REASONS = {
    Reason.CONVERGED,
    Reason.CREDENTIALS_VERIFIED,
    Reason.RECONCILED,
    Reason.IN_SYNC,
    Reason.SCALED_BY_SCHEDULE,
    Reason.WAKE_OVERRIDE,
}
# Ready=True reasons where the schedule sets what runs: Healthy, with the reason shown.
HEALTHY_BY_SCHEDULE = {Reason.SCALED_BY_SCHEDULE, Reason.WAKE_OVERRIDE}
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def run_health(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Run <kind>/health.lua with `obj` as the global, the way Argo CD calls it."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(SANDBOX)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((HEALTH_DIR / kind / "health.lua").read_text())
    return dict(result.items())


def health_cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH_DIR / kind / "health_test.yaml").read_text())
        for test in spec["tests"]:
            path = HEALTH_DIR / kind / test["inputPath"]
            cases.append(pytest.param(kind, path, test["healthStatus"], id=f"{kind}/{path.stem}"))
    return cases


@pytest.mark.parametrize(("kind", "path", "expected"), health_cases())
def test_health_matches_health_test_yaml(kind: str, path: Path, expected: dict[str, str]) -> None:
    obj = yaml.safe_load(path.read_text())
    assert obj["kind"] == kind, "testdata must be a full object of the kind under test"
    assert run_health(kind, obj) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_is_used(kind: str) -> None:
    spec = yaml.safe_load((HEALTH_DIR / kind / "health_test.yaml").read_text())
    used = {t["inputPath"] for t in spec["tests"]}
    present = {f"testdata/{p.name}" for p in (HEALTH_DIR / kind / "testdata").glob("*.yaml")}
    assert used == present


@pytest.mark.parametrize("kind", KINDS)
def test_testdata_covers_every_health_status(kind: str) -> None:
    spec = yaml.safe_load((HEALTH_DIR / kind / "health_test.yaml").read_text())
    statuses = {t["healthStatus"]["status"] for t in spec["tests"]}
    assert statuses <= ARGO_STATUSES
    wanted = {"Healthy", "Progressing", "Degraded"}
    if kind == "InferenceService":
        wanted.add("Suspended")
    assert wanted <= statuses


def test_every_reason_is_classified() -> None:
    assert set(EXPECTED_FOR_READY_FALSE) | HEALTHY_REASONS == set(Reason)
    assert not set(EXPECTED_FOR_READY_FALSE) & HEALTHY_REASONS


def test_every_reason_appears_in_testdata() -> None:
    seen: set[str] = set()
    for path in HEALTH_DIR.glob("*/testdata/*.yaml"):
        status = yaml.safe_load(path.read_text()).get("status") or {}
        seen |= {c.get("reason") for c in status.get("conditions") or []}
    assert {str(r) for r in Reason} - seen == set()


def test_testdata_conditions_use_declared_types() -> None:
    types = {str(t) for t in ConditionType}
    for path in HEALTH_DIR.glob("*/testdata/*.yaml"):
        status = yaml.safe_load(path.read_text()).get("status") or {}
        for cond in status.get("conditions") or []:
            assert cond["type"] in types, path.name


def _ready_false(kind: str, reason: str, status: str = "False") -> dict[str, Any]:
    base = HEALTH_DIR / kind / "testdata" / "healthy_converged.yaml"
    if kind == "CloudAccount":
        base = HEALTH_DIR / kind / "testdata" / "healthy_credentialsVerified.yaml"
    obj = copy.deepcopy(yaml.safe_load(base.read_text()))
    for cond in obj["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status=status, reason=reason, message="details")
    return obj


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ready_status", ["False", "Unknown"])
@pytest.mark.parametrize("reason", sorted(EXPECTED_FOR_READY_FALSE))
def test_each_reason_maps_to_its_health(kind: str, ready_status: str, reason: Reason) -> None:
    result = run_health(kind, _ready_false(kind, reason, ready_status))
    assert result == {"status": EXPECTED_FOR_READY_FALSE[reason], "message": f"{reason}: details"}


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda o: o.pop("metadata"), id="no-metadata"),
        pytest.param(lambda o: o["metadata"].pop("generation"), id="no-generation"),
        pytest.param(lambda o: o.pop("spec"), id="no-spec"),
        pytest.param(lambda o: o["status"].pop("observedGeneration"), id="no-status-generation"),
        pytest.param(lambda o: o["status"].update(conditions=None), id="null-conditions"),
        pytest.param(lambda o: o["status"].update(conditions=[{}]), id="empty-condition"),
        pytest.param(lambda o: o["status"]["conditions"][0].clear(), id="cleared-ready"),
        pytest.param(lambda o: o.update(status={}), id="empty-status"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_missing_fields_never_raise(kind: str, mutate: Any) -> None:
    """A Lua runtime error makes Argo CD show Unknown with the error text: guard every nil."""
    obj = _ready_false(kind, "Converging")
    mutate(obj)
    result = run_health(kind, obj)
    assert result["status"] in {"Progressing", "Healthy"}
    assert isinstance(result["message"], str)
    assert result["message"]


@pytest.mark.parametrize("reason", sorted(HEALTHY_REASONS))
def test_ready_true_is_healthy_and_names_a_schedule_reason(reason: Reason) -> None:
    result = run_health("InferenceService", _ready_false("InferenceService", reason, "True"))
    shown = f"{reason}: details" if reason in HEALTHY_BY_SCHEDULE else "details"
    assert result == {"status": "Healthy", "message": shown}


def test_spec_suspend_wins_over_degraded_ready() -> None:
    obj = _ready_false("InferenceService", "AuthFailed")
    obj["spec"]["suspend"] = True
    assert run_health("InferenceService", obj) == {
        "status": "Suspended",
        "message": "Suspended: spec.suspend is true",
    }


def test_stale_generation_wins_over_spec_suspend() -> None:
    """A just-applied suspend: true is not Suspended until the operator has observed it."""
    obj = _ready_false("InferenceService", "Converged", status="True")
    obj["spec"]["suspend"] = True
    obj["metadata"]["generation"] += 1
    assert run_health("InferenceService", obj)["status"] == "Progressing"


def test_argocd_cm_holds_the_lua_files_verbatim() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-cm"
    expected = {
        f"resource.customizations.health.cloudinfer.dev_{kind}": (
            HEALTH_DIR / kind / "health.lua"
        ).read_text()
        for kind in KINDS
    }
    assert cm["data"] == expected, "argocd/argocd-cm.yaml is stale: run `make manifests`"
