"""Cloud faults injected through the simulators' control API, each followed by every invariant.

Every scenario runs its own operator in its own z-* namespace, on a fresh simulator account,
so the simulator journal filtered by account is exactly this scenario's traffic.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import FAST_SIM, CloudAccountHandle, writes
from invariants import account_entries
from scenario import Scenario, wait_until
from scenario import services as _services

from cloudsim.core import Settings as SimSettings
from cloudsim.server import make_sim, serve_in_thread

SCALE_ACTION = {"tencent": "ModifyModelService", "huawei": "UpdateServiceByProperty",
                "baidu": "ScaleService"}  # fmt: skip


def _errors(handle: CloudAccountHandle, code_prefix: str) -> list[dict[str, Any]]:
    return [
        e
        for e in account_entries(handle, writes_only=False)
        if str(e.get("error_code") or "").startswith(code_prefix)
    ]


def _fired(handle: CloudAccountHandle) -> int:
    return sum(int(f["fired"]) for f in handle.sim.control.faults() if f["account"] == handle.name)


def test_throttling_storm_on_every_action(scenario: Scenario) -> None:
    handle = scenario.account("tencent")
    rate = {"requestsPerSecond": 9, "scope": "PerInstance"}
    expected = _services(scenario, handle, 6, rateLimit=rate)
    handle.sim.control.inject(
        "*", code="RequestLimitExceeded", probability=0.6, count=40, account=handle.name
    )
    scenario.operator()
    scenario.finish(expected)
    assert len(_errors(handle, "RequestLimitExceeded")) >= 10, "the storm did not happen"
    assert len(writes(handle, "ModifyModelService")) == 6
    assert len(writes(handle, "ModifyModelServicePartialConfig")) == 6


def test_a_burst_of_writes_stays_within_the_clouds_write_limit(scenario: Scenario) -> None:
    """25 services all wanting a scale at once: the account's budget spreads the calls so that
    no second of the journal holds more ScaleService calls than Qianfan allows (10/s here)."""
    handle = scenario.account("baidu")
    expected = _services(scenario, handle, 25)
    scenario.operator()
    scenario.finish(expected, timeout=120)
    assert len(writes(handle, "ScaleService")) == 25
    assert _errors(handle, "QPSLimitReached") == [], "the cloud had to throttle us"


@pytest.mark.parametrize(
    ("provider", "fault"),
    [
        pytest.param("tencent", {"code": "InternalError"}, id="tencent-InternalError"),
        pytest.param("huawei", {"code": "ModelArts.0050", "http_status": 503}, id="huawei-503"),
        pytest.param("baidu", {"code": "InternalError", "http_status": 500}, id="baidu-500"),
    ],
)
def test_5xx_bursts(scenario: Scenario, provider: str, fault: dict[str, Any]) -> None:
    handle = scenario.account(provider)
    expected = _services(scenario, handle, 3)
    handle.sim.control.inject("*", count=10, account=handle.name, **fault)
    scenario.operator()
    scenario.finish(expected)
    assert len(_errors(handle, fault["code"])) == 10
    assert len(writes(handle, SCALE_ACTION[provider])) == len(expected)


def test_connection_resets(scenario: Scenario) -> None:
    handle = scenario.account("huawei")
    expected = _services(scenario, handle, 2)
    handle.sim.control.inject("*", kind="reset", count=6, account=handle.name)
    scenario.operator()
    scenario.finish(expected)
    assert _fired(handle) == 6
    assert len(_errors(handle, "fault:reset")) == 6  # journaled before the connection drops
    scales = writes(handle, "UpdateServiceByProperty")
    assert sorted(w["path_params"]["sid"] for w in scales) == sorted(
        scenario.kube.get(scenario.ns, name)["spec"]["serviceId"] for name in expected
    ), scales


def test_short_hangs_then_dropped_connections(scenario: Scenario) -> None:
    """Hangs of 2 s ended by the server dropping the connection (the client timeout is 30 s:
    see test_writes_hanging_or_slow_past_the_client_timeout for the real thing)."""
    handle = scenario.account("baidu")
    expected = _services(scenario, handle, 3)
    handle.sim.control.inject("*", kind="hang", latency=2, count=4, account=handle.name)
    scenario.operator()
    scenario.finish(expected)
    assert len(_errors(handle, "fault:hang")) == 4


def test_writes_hanging_or_slow_past_the_client_timeout(scenario: Scenario) -> None:
    """Two scales meet a cloud that holds them past the operator's 30 s read timeout: one is
    never answered (a hang, never applied), the other is applied after 31 s (a slow cloud: the
    client gave up but the write happened). Neither is sent again by the client; the
    reconciler sends again only what an observation after the timeout shows unapplied."""
    handle = scenario.account("tencent")
    expected = _services(scenario, handle, 2)
    control = handle.sim.control
    control.inject("ModifyModelService", kind="hang", latency=45, count=1, account=handle.name)
    control.inject("ModifyModelService", kind="latency", latency=31, count=1, account=handle.name)
    scenario.operator()
    scenario.finish(expected, timeout=120)
    hung = _errors(handle, "fault:hang")
    assert len(hung) == 1
    scales = writes(handle, "ModifyModelService")
    by_service = {}
    for w in scales:
        by_service.setdefault(w["params"]["ServiceId"], []).append(w)
    assert sorted(len(v) for v in by_service.values()) == [1, 1], scales
    # The hung call was sent again after the client gave up (30 s) and an observation showed
    # it unapplied, not when the server dropped it (45 s). The slow one was seen applied, so
    # it went out once: no call of it came back busy (a second one, mid-transition).
    first = min(w["time"] for w in scales)
    assert 29 <= first - hung[0]["time"] < 44, first - hung[0]["time"]
    late = [
        e for e in account_entries(handle, writes_only=True) if e["error_code"] == "ResourceInUse"
    ]
    assert not late, late


def test_malformed_truncated_and_html_replies(scenario: Scenario) -> None:
    handle = scenario.account("tencent")
    rate = {"requestsPerSecond": 5, "scope": "PerInstance"}
    expected = _services(scenario, handle, 4, rateLimit=rate)
    control = handle.sim.control
    control.inject("*", kind="malformed", probability=0.4, count=6, account=handle.name)
    control.inject("*", kind="html", probability=0.4, count=6, account=handle.name)
    scenario.operator()
    scenario.finish(expected)
    assert len(_errors(handle, "fault:malformed")) >= 2
    assert len(_errors(handle, "fault:html")) >= 2


TRANSITION_SECONDS = 6.0
"""Long enough that the test sees the transition it edits in, on a busy machine."""


def test_resource_in_use_during_a_transition(scenario: Scenario) -> None:
    """The cloud answers "busy" to the first scales (injected), then a user changes replicas
    again while the cloud is mid-transition: the operator waits, then sends each target once."""
    slow = {**FAST_SIM, "scale_seconds": TRANSITION_SECONDS}
    running = serve_in_thread(make_sim("tencent", seed=12, settings=SimSettings(**slow)))
    try:
        handle = scenario.account("tencent", sim=running)
        expected = _services(scenario, handle, 2)
        control = handle.sim.control
        control.inject("ModifyModelService", code="ResourceInUse", count=3, account=handle.name)
        svc0 = scenario.kube.get(scenario.ns, "svc0")["spec"]["serviceId"]
        scenario.operator()

        def svc0_mid_transition() -> bool:
            scales = writes(handle, "ModifyModelService")
            scaled = any(w["params"]["ServiceId"] == svc0 for w in scales)
            status = control.service(svc0)["internal"]["status"]
            return scaled and status in {"Pending", "Waiting"}

        wait_until(svc0_mid_transition, what="svc0 mid-transition after its first accepted scale")
        scenario.edit("svc0", {"spec": {"replicas": 3}})
        scenario.finish(expected)
        assert len(_errors(handle, "ResourceInUse")) >= 3
        scales = writes(handle, "ModifyModelService")
        assert len({w["params"]["ServiceId"] for w in scales}) == 2
        # svc0: its first target, then 3, each once; the 3 only after the transition ended,
        # so the cloud never had to refuse it as busy.
        svc0_scales = sorted(
            (w for w in scales if w["params"]["ServiceId"] == svc0), key=lambda w: float(w["time"])
        )
        assert [w["params"]["Replicas"] for w in svc0_scales] == [2, 3], svc0_scales
        assert svc0_scales[1]["time"] - svc0_scales[0]["time"] >= TRANSITION_SECONDS, svc0_scales
    finally:
        running.stop()


@pytest.mark.parametrize(
    "down_seconds",
    [pytest.param(20, id="20s"), pytest.param(60, marks=pytest.mark.soak, id="soak-60s")],
)
def test_endpoint_down_then_back(scenario: Scenario, down_seconds: float) -> None:
    """The cloud endpoint stops listening while the user changes the spec: 20 s in `make test`
    (several observer back-off rounds), the full minute of issue 10 in `make test-soak`."""
    running = serve_in_thread(make_sim("huawei", seed=11, settings=SimSettings(**FAST_SIM)))
    port = running.port
    try:
        handle = scenario.account("huawei", sim=running)
        expected = _services(scenario, handle, 1)
        scenario.operator()
        scenario.finish(expected)

        running.stop()
        down_at = time.monotonic()
        scenario.edit("svc0", {"spec": {"replicas": 4}})
        account = scenario.kube.wait_condition(
            scenario.ns, "acct", status="False", reason="CloudUnreachable",
            plural="cloudaccounts", timeout=20,
        )  # fmt: skip
        assert "transport error" in account["message"] or "ConnectError" in account["message"]
        scenario.kube.wait_condition(
            scenario.ns, "svc0", status="False", reason="CloudUnreachable", timeout=20
        )
        time.sleep(max(0.0, down_seconds - (time.monotonic() - down_at)))
        running = serve_in_thread(running.sim, port=port)
        handle.sim = running
        scenario.finish(expected, timeout=60)
        calls = writes(handle, "UpdateServiceByProperty")
        assert [c["params"]["configs"][0]["changed_value"] for c in calls] == ["2", "4"], calls
    finally:
        running.stop()


@pytest.mark.parametrize(
    "skew",
    [pytest.param(4000, id="operator-behind"), pytest.param(-4000, id="operator-ahead")],
)
def test_clock_skew_is_auth_failed_naming_clock_skew(scenario: Scenario, skew: float) -> None:
    """The cloud's signature clock 4000 s ahead of the operator's, or behind it: every
    signature is rejected as expired, on all three clouds. A request carries the operator's
    time and the cloud compares it with its own, so skewing the simulator's signature clock
    is, for the cloud, the same as skewing the operator's (the operator needs no test hook);
    "operator-ahead" reaches the clouds' future-timestamp checks (Qianfan has its own)."""
    handles = {}
    for provider in ("tencent", "huawei", "baidu"):
        handles[provider] = scenario.account(provider, name=f"acct-{provider}")
        service_id = handles[provider].add_service(name="chat", replicas=1)
        scenario.service(
            provider, {"accountRef": {"name": f"acct-{provider}"}, "serviceId": service_id,
                       "replicas": 2},
        )  # fmt: skip
    for provider in handles:
        scenario.sims[provider].control.set_clock(auth_skew=skew)
    try:
        scenario.operator()
        for provider in handles:
            account = scenario.kube.wait_condition(
                scenario.ns, f"acct-{provider}", status="False", reason="AuthFailed",
                plural="cloudaccounts", timeout=30,
            )  # fmt: skip
            assert "clock skew" in account["message"], account
            service = scenario.kube.wait_condition(
                scenario.ns, provider, status="False", reason="AuthFailed", timeout=30
            )
            assert "clock skew" in service["message"], service
        for handle in handles.values():
            assert account_entries(handle, writes_only=True) == []
    finally:
        for provider in handles:
            scenario.sims[provider].control.set_clock(auth_skew=0)
    # Fixing the clock recovers without a restart (ClockSkewError retries slowly, not never).
    scenario.finish(dict.fromkeys(handles, "Converged"), timeout=90)


def test_over_10mb_truncated_and_html_replies(scenario: Scenario) -> None:
    """Every call answered with an 11 MB body (the simulator's `oversized` fault, as from a
    gateway in front of a runaway backend): a truncated JSON document, then an HTML error
    page. The account reports each briefly, the operator stays healthy, and once the cloud
    answers normally again everything converges."""
    handle = scenario.account("baidu")
    expected = _services(scenario, handle, 2)
    control = handle.sim.control
    fault = control.inject("*", kind="oversized", account=handle.name)
    operator = scenario.operator()

    def reported(text: str) -> dict[str, Any]:
        wait_until(
            lambda: text in _account_message(scenario), timeout=30, what=f"{text!r} reported"
        )
        return scenario.kube.condition(scenario.ns, "acct", plural="cloudaccounts")

    truncated = reported("not a JSON object")
    assert truncated["reason"] == "CloudUnreachable", truncated
    assert len(truncated["message"]) < 1024, "an error quotes the whole body"
    control.remove_fault(fault["id"])
    fault = control.inject("*", kind="oversized", http_status=502, account=handle.name)
    html = reported("HTML page")
    assert html["reason"] == "CloudUnreachable", html
    assert len(html["message"]) < 1024
    assert operator.healthy()
    control.remove_fault(fault["id"])
    scenario.finish(expected)
    assert len(_errors(handle, "fault:oversized")) >= 2
    assert len(writes(handle, "ScaleService")) == 2


def _account_message(scenario: Scenario) -> str:
    return str(scenario.kube.condition(scenario.ns, "acct", plural="cloudaccounts").get("message"))
