"""Fast polls follow what is in flight on the cloud, not the status queue: a status write may
wait behind thousands of others (a FIFO of request slots, main/apiserver.py), and a service
already seen converged must not keep its account listing every second meanwhile (at 10
accounts of 1,000 services that doubled the lists of a convergence, bench/README.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from test_claim_rule import RecordingKube, _observe, _scaling


class QueuedKube(RecordingKube):
    """Status writes wait until the test lets them through, as in a long request queue."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = asyncio.Event()
        self.release = asyncio.Event()

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        self.queued.set()
        await self.release.wait()
        self.release.clear()
        await super().patch_status(plural, namespace, name, patch)


def test_activity_is_decided_before_the_status_write_lands() -> None:
    kube = QueuedKube()
    runtime, provider, service = _scaling(kube)
    observer = runtime.observer(("ns", "acct"))
    active_while_queued: list[bool] = []

    async def pass_with_queued_status() -> None:
        kube.queued.clear()
        running = asyncio.create_task(service.reconcile())
        await kube.queued.wait()
        active_while_queued.append("ms-1" in observer._active)
        kube.release.set()
        await running

    async def run() -> None:
        await pass_with_queued_status()  # scales 1 -> 2: in flight on the cloud
        _observe(runtime, provider, replicas=2)  # the cloud shows it done
        await pass_with_queued_status()

    asyncio.run(run())
    assert [getattr(c, "replicas", None) for c in provider.applied] == [2]
    assert len(kube.patches) == 2
    assert active_while_queued == [True, False], (
        "active while its scale is in flight, inactive once observed done, both before the "
        "status write landed"
    )
