"""Recurring stop windows whose boundary passes while no operator runs.

Windows are evaluated on the operator's wall clock with minute-granular crons, so this waits
for one real minute boundary: the setup picks the next boundary at least `LEAD` seconds
away (at most about 72 s, on average about 42 s).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from harness import writes
from scenario import Scenario, wait_until

LEAD = datetime.timedelta(seconds=12)
"""Enough for the running operator to settle both new services before the boundary."""
MARGIN_SECONDS = 3.0
"""The operator stops this long before the boundary and restarts this long after it."""
STOPPED = {"Stopped"}
"""TI-ONE's stopped status in the simulator."""


def _cron(at: datetime.datetime) -> str:
    """A daily cron (UTC) firing at `at`'s minute."""
    return f"{at.minute} {at.hour} * * *"


def _run_state_writes(scenario: Scenario, handle: Any, name: str) -> list[tuple[str, float]]:
    service_id = scenario.kube.get(scenario.ns, name)["spec"]["serviceId"]
    return [
        (w["params"]["ServiceAction"], float(w["time"]))
        for w in writes(handle, "ModifyModelService")
        if w["params"]["ServiceId"] == service_id and w["params"]["ServiceAction"] != "SCALE"
    ]


def test_window_boundary_passes_while_the_operator_is_down(scenario: Scenario) -> None:
    """Two services flip at the same minute boundary while the operator is stopped: `closing`
    sits in a window that closes there (the operator stopped it before going down), `opening`
    runs until a window opens there. Restarted after the boundary, the operator starts one and
    stops the other, each exactly once, and reports the next transitions."""
    handle = scenario.account("tencent")
    # The operator is up before the clock starts running against the boundary.
    first = scenario.operator()
    scenario.kube.wait_condition(
        scenario.ns, "acct", status="True", plural="cloudaccounts", timeout=30
    )
    now = datetime.datetime.now(datetime.UTC)
    boundary = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    if boundary - now < LEAD:
        boundary += datetime.timedelta(minutes=1)
    windows = {
        # Opened five minutes ago (yesterday's close is older), closes at the boundary.
        "closing": {"stop": _cron(boundary - datetime.timedelta(minutes=5)),
                    "start": _cron(boundary)},
        # Opens at the boundary, closes half an hour later: never reached here.
        "opening": {"stop": _cron(boundary),
                    "start": _cron(boundary + datetime.timedelta(minutes=30))},
    }  # fmt: skip
    for name, window in windows.items():
        service_id = handle.add_service(name=name, replicas=1)
        scenario.service(
            name,
            {"serviceId": service_id, "replicas": 1,
             "stopSchedule": {"timeZone": "UTC", "windows": [window]}},
        )  # fmt: skip
    scenario.freeze_specs()
    scenario.finish({"closing": "ScheduledStop", "opening": "Converged"}, timeout=10)
    before = {name: _run_state_writes(scenario, handle, name) for name in windows}
    assert [a for a, _ in before["closing"]] == ["STOP"], before
    assert before["opening"] == [], before
    slack = boundary.timestamp() - MARGIN_SECONDS - time.time()
    print(f"settled {slack:.1f}s before the operator has to stop")
    assert slack > 0, "set-up overran the boundary"

    time.sleep(max(0.0, boundary.timestamp() - MARGIN_SECONDS - time.time()))
    scenario.stop_operator(first)
    time.sleep(max(0.0, boundary.timestamp() + MARGIN_SECONDS - time.time()))
    restarted = time.time()
    scenario.operator()
    scenario.finish({"closing": "Converged", "opening": "ScheduledStop"}, timeout=30)

    after = {name: _run_state_writes(scenario, handle, name) for name in windows}
    assert [a for a, _ in after["closing"]] == ["STOP", "RESUME"], after
    assert [a for a, _ in after["opening"]] == ["STOP"], after
    for name in windows:
        action, at = after[name][-1]
        assert restarted <= at < restarted + 20, f"{name}: {action} at {at}, restart {restarted}"
    wait_until(
        lambda: handle.sim.control.service(
            scenario.kube.get(scenario.ns, "opening")["spec"]["serviceId"]
        )["internal"]["status"] in STOPPED,
        timeout=10, what="the cloud to report `opening` stopped",
    )  # fmt: skip
    next_transitions = {
        name: scenario.kube.get(scenario.ns, name)["status"]["nextTransition"] for name in windows
    }
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    assert next_transitions == {
        "closing": {"action": "Stop", "at": (boundary + datetime.timedelta(days=1, minutes=-5))
                    .strftime(stamp), "replicas": 0},
        "opening": {"action": "Start", "at": (boundary + datetime.timedelta(minutes=30))
                    .strftime(stamp), "replicas": 1},
    }, next_transitions  # fmt: skip
