"""Window tiers, skip dates and the wake override, end to end: the operator against the
apiserver and the TI-ONE simulator.

Windows are evaluated on the operator's wall clock with minute-granular crons. Only the tier
test waits for a real minute boundary (the window's close, at least `LEAD` away: 20-80 s).
The others use a window that opened five minutes ago and closes half an hour later, so what
they check happens at once (a skip date, a spec edit) or at a wake time to the second.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from harness import GROUP, VERSION, CloudAccountHandle, Kube, eventually, new_sim_account, writes

from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")

LEAD = datetime.timedelta(seconds=30)
"""Enough for the operator to act before a window closes or an override ends, with room for a
loaded machine: the set-up checks below fail (never skip) if it was not."""
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _cron(at: datetime.datetime) -> str:
    """A daily cron (UTC) firing at `at`'s minute."""
    return f"{at.minute} {at.hour} * * *"


def _minute(now: datetime.datetime, minutes: int) -> datetime.datetime:
    return now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=minutes)


def _open_window(now: datetime.datetime) -> tuple[dict[str, Any], datetime.datetime]:
    """A daily window that opened five minutes ago and closes in half an hour, and when it
    opened."""
    opened = _minute(now, -5)
    return {"stop": _cron(opened), "start": _cron(_minute(now, 30))}, opened


def _create(
    kube: Kube, namespace: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
) -> None:
    """An InferenceService with its annotations from the start: added later, the operator
    could act on the window first."""
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
         "metadata": {"name": name, "annotations": annotations},
         "spec": {"accountRef": {"name": "acct"}, **spec}},
    )  # fmt: skip


def _service(kube: Kube, sim: RunningSim, namespace: str, replicas: int) -> tuple[Any, str]:
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="chat", replicas=replicas)
    kube.create_account(namespace, handle)
    return handle, service_id


def _actions(handle: CloudAccountHandle) -> list[tuple[str, int | None, float]]:
    """(ServiceAction, Replicas, time) of each ModifyModelService the account received."""
    return [
        (w["params"]["ServiceAction"], w["params"].get("Replicas"), float(w["time"]))
        for w in writes(handle, "ModifyModelService")
    ]


def test_a_tier_window_scales_a_service_down_and_back(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, service_id = _service(kube, sims["tencent"], namespace, replicas=3)
    now = datetime.datetime.now(datetime.UTC)
    close = _minute(now, 1)
    if close - now < LEAD:
        close += datetime.timedelta(minutes=1)
    # Opened five minutes ago; runs 1 replica until it closes at the boundary.
    window = {"stop": _cron(_minute(now, -5)), "start": _cron(close), "replicas": 1}
    kube.create_service(
        namespace, "chat",
        {"serviceId": service_id, "replicas": 3,
         "stopSchedule": {"timeZone": "UTC", "windows": [window]}},
    )  # fmt: skip
    ready = kube.wait_condition(namespace, "chat", reason="ScaledBySchedule")
    assert "1 replicas" in ready["message"]
    status = kube.get(namespace, "chat")["status"]
    back = {"action": "Scale", "at": close.strftime(STAMP), "replicas": 3}
    assert status["nextTransition"] == back
    assert status["nextTransitions"][0] == back
    assert status["nextTransitions"][1] == {
        "action": "Scale",
        "at": (_minute(now, -5) + datetime.timedelta(days=1)).strftime(STAMP),
        "replicas": 1,
    }
    assert [(a, r) for a, r, _ in _actions(handle)] == [("SCALE", 1)]
    assert time.time() < close.timestamp(), "set-up overran the window's close"

    kube.wait_condition(namespace, "chat", reason="Converged", timeout=150)
    actions = _actions(handle)
    assert [(a, r) for a, r, _ in actions] == [("SCALE", 1), ("SCALE", 3)]
    assert actions[1][2] >= close.timestamp(), "scaled back before the window closed"
    assert handle.sim.control.service(service_id)["internal"]["replicas"] == 3


def test_a_skip_date_keeps_a_service_running_through_its_window(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, service_id = _service(kube, sims["tencent"], namespace, replicas=1)
    now = datetime.datetime.now(datetime.UTC)
    window, opened = _open_window(now)
    schedule = {"timeZone": "UTC", "windows": [window], "skipDates": [opened.date().isoformat()]}
    kube.create_service(
        namespace, "chat", {"serviceId": service_id, "replicas": 1, "stopSchedule": schedule}
    )
    kube.wait_condition(namespace, "chat", reason="Converged")
    # The next stop is the window's next opening, a day later; today's was skipped.
    tomorrow = opened + datetime.timedelta(days=1)
    assert kube.get(namespace, "chat")["status"]["nextTransition"] == {
        "action": "Stop", "at": tomorrow.strftime(STAMP), "replicas": 0,
    }  # fmt: skip
    assert _actions(handle) == []

    # Without the skip date the same window stops it at once: the date was what kept it up.
    kube.patch_service(namespace, "chat", {"spec": {"stopSchedule": {"skipDates": None}}})
    kube.wait_condition(namespace, "chat", status="False", reason="ScheduledStop")
    assert [a for a, _, _ in _actions(handle)] == ["STOP"]


def test_wake_until_keeps_a_service_up_through_a_window_then_lets_it_stop(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    handle, service_id = _service(kube, sims["tencent"], namespace, replicas=1)
    now = datetime.datetime.now(datetime.UTC)
    window, _ = _open_window(now)
    wake = (now + LEAD + datetime.timedelta(seconds=10)).replace(microsecond=0)
    _create(
        kube, namespace, "chat",
        {"serviceId": service_id, "replicas": 1,
         "stopSchedule": {"timeZone": "UTC", "windows": [window]}},
        {"cloudinfer.dev/wake-until": wake.strftime(STAMP)},
    )  # fmt: skip
    kube.wait_condition(namespace, "chat", reason="WakeOverride")
    status = kube.get(namespace, "chat")["status"]
    assert status["wakeOverride"] == {
        "value": wake.strftime(STAMP), "state": "Active", "until": wake.strftime(STAMP),
    }  # fmt: skip
    assert status["nextTransition"] == {"action": "Stop", "at": wake.strftime(STAMP), "replicas": 0}
    assert _actions(handle) == []
    assert time.time() < wake.timestamp(), "set-up overran the wake time"

    kube.wait_condition(namespace, "chat", status="False", reason="ScheduledStop", timeout=90)
    actions = _actions(handle)
    assert [a for a, _, _ in actions] == ["STOP"]
    assert actions[0][2] >= wake.timestamp(), "stopped before the override ended"
    expired = f"cloudinfer.dev/wake-until {wake.strftime(STAMP)} has passed; ignored"
    assert expired in kube.condition(namespace, "chat")["message"]
    assert kube.get(namespace, "chat")["status"]["wakeOverride"]["state"] == "Expired"

    def ignored() -> list[Any]:
        return [
            e for e in kube.events(namespace)
            if e.reason == "WakeOverrideIgnored" and e.involved_object.name == "chat"
        ]  # fmt: skip

    eventually(lambda: len(ignored()) == 1, what="one WakeOverrideIgnored event")
    # A malformed value is ignored too (the window keeps it stopped), with one more event.
    kube.patch_service(
        namespace, "chat", {"metadata": {"annotations": {"cloudinfer.dev/wake-until": "soon"}}}
    )
    eventually(
        lambda: kube.get(namespace, "chat")["status"]["wakeOverride"]["state"] == "Invalid",
        what="the malformed override in status",
    )
    eventually(lambda: len(ignored()) == 2, what="a second WakeOverrideIgnored event")
    assert "'soon' is not an RFC 3339 time" in kube.condition(namespace, "chat")["message"]
    assert [a for a, _, _ in _actions(handle)] == ["STOP"]
