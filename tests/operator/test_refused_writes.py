"""The error policy end to end: a write the cloud refuses as invalid is sent once and held
through many observations (time plays no part), and a spec change lifts the hold at once.
Counted from the simulator's journal, filtered to this test's account."""

from __future__ import annotations

from typing import Any

import pytest
from harness import GROUP, VERSION, Kube, eventually, new_sim_account

from cloudsim.server import RunningSim

pytestmark = pytest.mark.usefixtures("operator_process")

LIST_ACTION = "DescribeModelServiceGroups"
SCALE_ACTION = "ModifyModelService"
OBSERVATIONS = 24
NATURAL_POLLS = 10  # at pollIntervalSeconds: 5, about 50 s


def _calls(sim: RunningSim, account: str, action: str) -> list[dict[str, Any]]:
    """Every call of `action` by `account`, failed or not, oldest first."""
    log = sim.control.journal(action).get(action, {})
    return [entry for entry in log.get("writes" if action == SCALE_ACTION else "entries", [])
            if entry.get("account") == account]  # fmt: skip


def test_an_invalid_write_is_held_until_the_spec_changes(
    kube: Kube, sims: dict[str, RunningSim], namespace: str
) -> None:
    sim = sims["tencent"]
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="chat", replicas=1)
    fault = sim.control.inject(
        SCALE_ACTION, "error", code="InvalidParameterValue",
        message="Replicas exceeds the resource group capacity", account=handle.name,
    )  # fmt: skip
    kube.create_account(namespace, handle, poll=5, active_poll=1)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": 3})

    held = kube.wait_condition(namespace, "chat", status="False", reason="CloudRejected")
    assert "not sent again until the spec" in held["message"]

    # Many observation cycles, each a chance to retry. Most are made at once: every
    # annotation change of the CloudAccount makes its observer list (annotations leave the
    # generation alone); the console drifts the service now and then, and the
    # InferenceService is woken too. The last ones come at the 5 s poll interval, so the
    # test outlasts the first two steps of a backoff (15 s + 30 s at most): a refusal that
    # was retried on time instead of held would be sent at least twice more.
    for cycle in range(OBSERVATIONS):
        listed = len(_calls(sim, handle.name, LIST_ACTION))
        if cycle < OBSERVATIONS - NATURAL_POLLS:
            kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "cloudaccounts", "acct",
                {"metadata": {"annotations": {"test.cloudinfer.dev/poke": str(cycle)}}},
            )  # fmt: skip
        if cycle % 5 == 4:
            drifted = 2 if (cycle // 5) % 2 == 0 else 1  # never the 3 the spec asks for
            sim.control.edit_service(service_id, replicas=drifted, ready=drifted)
            kube.patch_service(namespace, "chat", {"metadata": {"labels": {"cycle": str(cycle)}}})
        eventually(
            lambda listed=listed: len(_calls(sim, handle.name, LIST_ACTION)) > listed,
            timeout=60, what=f"observation {cycle + 1}",
        )  # fmt: skip
    assert kube.condition(namespace, "chat")["reason"] == "CloudRejected"
    assert kube.get(namespace, "chat")["metadata"]["generation"] == 1
    attempts = _calls(sim, handle.name, SCALE_ACTION)
    assert len(attempts) <= 2, attempts  # the acceptance bound; the policy makes it one
    assert [(a["params"]["Replicas"], a["error_code"]) for a in attempts] == [
        (3, "InvalidParameterValue")
    ]
    warnings = [
        e for e in kube.events(namespace)
        if e.involved_object.name == "chat" and e.type == "Warning" and e.reason == "CloudRejected"
    ]  # fmt: skip
    assert len(warnings) == 1, [e.message for e in warnings]
    refusal = kube.get(namespace, "chat")["status"]["journal"][-1]
    assert (refusal["result"], refusal["errorClass"], refusal["generation"]) == (
        "Failed",
        "CloudInvalidRequest",
        1,
    )
    assert "retryAt" not in refusal  # held: no retry time at all

    # A spec change (a new generation) lifts the hold at once.
    sim.control.remove_fault(int(fault["id"]))
    kube.patch_service(namespace, "chat", {"spec": {"replicas": 4}})
    kube.wait_condition(namespace, "chat", reason="Converged")
    attempts = _calls(sim, handle.name, SCALE_ACTION)
    assert [(a["params"]["Replicas"], a["error_code"]) for a in attempts] == [
        (3, "InvalidParameterValue"), (4, None)
    ]  # fmt: skip
