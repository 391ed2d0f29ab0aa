"""Status writes take turns (Runtime.status_turns) and build their patch when their turn
comes: a status that waited while a newer observation arrived stores what that one says,
one write instead of two (under load, 10,000 services wrote 22,000 statuses, half of them
"Converging" stored after the service was already done; bench/README.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_claim_rule import RecordingKube, _observe, _scaling


def _ready(patch: Any) -> tuple[str, str]:
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    return ready["status"], ready["reason"]


@pytest.mark.parametrize(
    ("done_while_waiting", "stored"),
    [
        pytest.param(True, [("True", "Converged")], id="newer-observation-stored"),
        pytest.param(False, [("False", "Converging")], id="nothing-newer"),
    ],
)
def test_a_status_waiting_its_turn_stores_the_latest_observation(
    done_while_waiting: bool, stored: list[tuple[str, str]]
) -> None:
    kube = RecordingKube()
    runtime, provider, service = _scaling(kube)
    runtime.status_turns = asyncio.Semaphore(1)

    async def run() -> None:
        await runtime.status_turns.acquire()  # every turn is taken by other services
        passing = asyncio.create_task(service.reconcile())
        await asyncio.sleep(0.1)  # the pass plans and calls the cloud, then waits its turn
        assert provider.applied and kube.patches == [], "the status waits for its turn"
        if done_while_waiting:
            _observe(runtime, provider, replicas=2)  # the scale is done on the cloud
        runtime.status_turns.release()
        await passing

    asyncio.run(run())
    assert [getattr(c, "replicas", None) for c in provider.applied] == [2], "one cloud call"
    assert [_ready(patch) for _, patch in kube.patches] == stored
    journal = kube.patches[0][1]["journal"]
    assert [entry["change"] for entry in journal] == ["scale: replicas 1 -> 2"], "on record"
    active = "ms-1" in runtime.observer(("ns", "acct"))._active
    assert active is not done_while_waiting, "fast polls end with the observed transition"
