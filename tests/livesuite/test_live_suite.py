"""The opt-in live suite (`make test-live`, tests/live/) behaves as documented, checked against
the simulators through its endpoint override variables: there is no real account here.

Each case runs the suite as `make test-live` does, in a subprocess with a clean environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudsim.server import RunningSim, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
TC_ID, TC_KEY = "AKIDlivesuite0000000000000000000000001", "livesuiteSecretKey00000000000001"
HW_AK, HW_SK, HW_PROJECT = "HWLIVESUITEAK0000001", "hwlivesuitesk000000000000000000000001", "p1"
BD_AK, BD_SK, BD_UNIT = "bdlivesuiteak000000000001", "bdlivesuitesk00000000000000000001", "cu-1"
EVERY_REQUIRED = [
    "CLOUDINFER_LIVE_TENCENT_SECRET_ID",
    "CLOUDINFER_LIVE_TENCENT_SECRET_KEY",
    "CLOUDINFER_LIVE_TENCENT_REGION",
    "CLOUDINFER_LIVE_HUAWEI_AK",
    "CLOUDINFER_LIVE_HUAWEI_SK",
    "CLOUDINFER_LIVE_HUAWEI_PROJECT_ID",
    "CLOUDINFER_LIVE_HUAWEI_REGION",
    "CLOUDINFER_LIVE_BAIDU_AK",
    "CLOUDINFER_LIVE_BAIDU_SK",
]
WRITE_ACTIONS = {
    "tencent": ("ModifyModelService", "ModifyModelServicePartialConfig"),
    "huawei": ("UpdateService", "UpdateServiceByProperty"),
    "baidu": ("ScaleService", "DeactivateService"),
}


def run_live_suite(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`make test-live`: CLOUDINFER_LIVE=1 and pytest on tests/live, nothing else inherited."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDINFER_LIVE")}
    for proxy in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        clean.pop(proxy, None)
    clean["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "operator"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/live", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**clean, "CLOUDINFER_LIVE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, RunningSim]]:
    handles = {cloud: serve_in_thread(cloud, seed=3, speed=1) for cloud in WRITE_ACTIONS}
    try:
        yield handles
    finally:
        for handle in handles.values():
            handle.stop()


@pytest.fixture
def seeded(sims: dict[str, RunningSim]) -> dict[str, str]:
    """One account and two services per simulator; the environment that points at them."""
    for handle in sims.values():
        handle.control.reset()
        handle.control.update_settings(scale_seconds=0.2, start_seconds=0.2, stop_seconds=0.2)
    tencent, huawei, baidu = (sims[c].control for c in ("tencent", "huawei", "baidu"))
    tencent.add_account(name="a", secret_id=TC_ID, secret_key=TC_KEY)
    huawei.add_account(name="a", ak=HW_AK, sk=HW_SK, projects=[HW_PROJECT])
    baidu.add_account(name="a", ak=BD_AK, sk=BD_SK, compute_units={BD_UNIT: {"total_units": 8}})
    for name in ("one", "two"):
        tencent.add_service(account="a", name=name, service_id=f"ms-{name}-1", replicas=1)
        huawei.add_service(account="a", name=name, service_id=f"svc-{name}", replicas=1)
        baidu.add_service(account="a", name=name, service_id=f"svco-{name}", units={BD_UNIT: 1})
    return {
        "CLOUDINFER_LIVE_TENCENT_SECRET_ID": TC_ID,
        "CLOUDINFER_LIVE_TENCENT_SECRET_KEY": TC_KEY,
        "CLOUDINFER_LIVE_TENCENT_REGION": "ap-guangzhou",
        "CLOUDINFER_LIVE_TENCENT_ENDPOINT": sims["tencent"].base_url,
        "CLOUDINFER_LIVE_HUAWEI_AK": HW_AK,
        "CLOUDINFER_LIVE_HUAWEI_SK": HW_SK,
        "CLOUDINFER_LIVE_HUAWEI_PROJECT_ID": HW_PROJECT,
        "CLOUDINFER_LIVE_HUAWEI_REGION": "cn-north-4",
        "CLOUDINFER_LIVE_HUAWEI_ENDPOINT": sims["huawei"].base_url,
        "CLOUDINFER_LIVE_BAIDU_AK": BD_AK,
        "CLOUDINFER_LIVE_BAIDU_SK": BD_SK,
        "CLOUDINFER_LIVE_BAIDU_ENDPOINT": sims["baidu"].base_url,
        "CLOUDINFER_LIVE_POLL_SECONDS": "0.1",
        "CLOUDINFER_LIVE_WRITE_TIMEOUT_SECONDS": "60",
    }


def _writes(sims: dict[str, RunningSim], cloud: str) -> list[dict[str, object]]:
    return [w for action in WRITE_ACTIONS[cloud] for w in sims[cloud].control.writes(action)]


def test_make_test_never_collects_the_live_suite() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/live"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "CLOUDINFER_LIVE"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "test_live_contract" not in collected.stdout
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n.PHONY", 1)[0]
    assert "CLOUDINFER_LIVE" not in test_recipe


def test_without_credentials_it_fails_naming_every_variable() -> None:
    result = run_live_suite({})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    missing = [name for name in EVERY_REQUIRED if name not in output]
    assert not missing, f"not named: {missing}\n{output}"
    assert "CLOUDINFER_LIVE_TENCENT_WRITE_SERVICE_ID" in output


def test_a_cloud_configured_in_part_fails_naming_what_is_missing() -> None:
    result = run_live_suite({"CLOUDINFER_LIVE_HUAWEI_AK": "x", "CLOUDINFER_LIVE_HUAWEI_SK": "y"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "CLOUDINFER_LIVE_HUAWEI_PROJECT_ID" in output
    assert "CLOUDINFER_LIVE_HUAWEI_REGION" in output


def test_a_write_service_without_replicas_is_refused(seeded: dict[str, str]) -> None:
    result = run_live_suite({**seeded, "CLOUDINFER_LIVE_BAIDU_WRITE_SERVICE_ID": "svco-one"})
    assert result.returncode != 0
    assert "CLOUDINFER_LIVE_BAIDU_WRITE_REPLICAS" in result.stdout + result.stderr


def test_by_default_it_only_reads_and_says_what_it_did_not_run(
    sims: dict[str, RunningSim], seeded: dict[str, str]
) -> None:
    result = run_live_suite(seeded, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    for cloud in WRITE_ACTIONS:
        assert f"RAN against {cloud} at {sims[cloud].base_url}" in result.stdout
        assert _writes(sims, cloud) == [], f"{cloud} was written to"
        journal = sims[cloud].control.journal()
        assert journal, f"{cloud} was never called"
    # The operator's providers did the reading, with their own list and detail calls.
    assert set(sims["tencent"].control.journal()) >= {"DescribeModelServiceGroups"}
    assert set(sims["huawei"].control.journal()) >= {"ListServices", "ShowService"}
    assert set(sims["baidu"].control.journal()) >= {"DescribeServices", "DescribeService"}
    not_run = re.findall(r"NOT RUN: (.*)", result.stdout)
    assert len(not_run) == 3 and all("read-only run" in line for line in not_run)
    assert "deselected" in result.stdout  # the write tests, visibly


def test_only_the_configured_cloud_runs_and_the_others_are_listed(
    sims: dict[str, RunningSim], seeded: dict[str, str]
) -> None:
    tencent_only = {k: v for k, v in seeded.items() if "HUAWEI" not in k and "BAIDU" not in k}
    result = run_live_suite(tencent_only)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT RUN: ModelArts: not configured" in result.stdout
    assert "NOT RUN: Qianfan: not configured" in result.stdout
    assert sims["huawei"].control.journal() == {}
    assert sims["baidu"].control.journal() == {}


@pytest.mark.parametrize(
    ("cloud", "service_id", "action", "key"),
    [
        ("tencent", "ms-one-1", "ModifyModelService", "ServiceId"),
        ("huawei", "svc-one", "UpdateServiceByProperty", None),
        ("baidu", "svco-one", "ScaleService", "serviceId"),
    ],
)
def test_a_named_write_service_is_scaled_and_scaled_back_and_nothing_else(
    *,
    sims: dict[str, RunningSim],
    seeded: dict[str, str],
    cloud: str,
    service_id: str,
    action: str,
    key: str | None,
) -> None:
    env = {
        **seeded,
        f"CLOUDINFER_LIVE_{cloud.upper()}_WRITE_SERVICE_ID": service_id,
        f"CLOUDINFER_LIVE_{cloud.upper()}_WRITE_REPLICAS": "2",
    }
    result = run_live_suite(env)
    assert result.returncode == 0, result.stdout + result.stderr
    writes = _writes(sims, cloud)
    assert len(writes) == 2, writes  # there and back
    for write in writes:
        target = write["params"][key] if key else write["path_params"]["sid"]  # type: ignore[index]
        assert target == service_id
    assert len(re.findall(rf"WROTE: {cloud} .*{service_id}", result.stdout)) == 2
    assert sims[cloud].control.service(service_id)["internal"]["replicas"] == 1
    for other in WRITE_ACTIONS:
        if other != cloud:
            assert _writes(sims, other) == []
