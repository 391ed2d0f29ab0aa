"""The pure parts of main/services.py: what is kept of a body, and which changes wake a
reconciler (its own status write, echoed by the watch, must not)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST
from cloudinfer.main.services import ServiceTasks, slim, wakes_reconciler
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.runtime import Runtime


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


def test_a_fence_lapse_too_short_to_stop_the_observer_keeps_every_task() -> None:
    """Sharding: while an account is served here, an event that arrives during a momentary
    lapse of its fence must not drop the service's body and task (they would not come back
    until the observer restarted: services stuck Converging in the N = 10,000 bench)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
    from test_claim_rule import RecordingKube, _service  # noqa: PLC0415

    holding = {"now": True}

    async def scenario() -> tuple[int, int, int]:
        runtime = Runtime(RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST)  # type: ignore[arg-type]
        runtime.account_seen(("ns", "acct"), True)
        tasks = ServiceTasks(
            runtime, None, lambda: None,  # type: ignore[arg-type]
            may_act=lambda _: holding["now"], held_event=lambda _: asyncio.Event(),
        )  # fmt: skip
        tasks.start()
        body = _service("chat", "2026-05-10T08:00:00Z", replicas=2)
        tasks.serve(("ns", "acct"))
        tasks.seen(("ns", "chat"), body)
        await asyncio.sleep(0.05)
        before = tasks.running
        holding["now"] = False  # the lapse
        tasks.seen(("ns", "chat"), {**body, "metadata": {**body["metadata"], "labels": {"a": "b"}}})
        await asyncio.sleep(0.05)
        during = tasks.running
        holding["now"] = True
        await tasks.unserve(("ns", "acct"), gone=False)  # the account went elsewhere
        after = tasks.running
        await tasks.close()
        return before, during, after

    assert asyncio.run(scenario()) == (1, 1, 0)


def test_an_older_body_from_a_listing_changes_neither_the_body_nor_the_account_index() -> None:
    """Adopting an account lists its services while the watch runs: a listed body older than
    the kept one (here, from before an edit moved the service to another account) must leave
    both the body and the account the service is filed under as the newer one says, so that
    giving that account up still stops the service's task."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
    from test_claim_rule import RecordingKube, _service  # noqa: PLC0415

    def version(account: str, resource_version: str) -> dict[str, Any]:
        body = _service("chat", "2026-05-10T08:00:00Z", replicas=2)
        body["spec"]["accountRef"] = {"name": account}
        body["metadata"]["resourceVersion"] = resource_version
        return body

    async def scenario() -> tuple[int, int]:
        runtime = Runtime(RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST)  # type: ignore[arg-type]
        for account in ("old", "new"):
            runtime.account_seen(("ns", account), True)
        tasks = ServiceTasks(
            runtime, None, lambda: None,  # type: ignore[arg-type]
            may_act=lambda _: True, held_event=lambda _: asyncio.Event(),
        )  # fmt: skip
        tasks.start()
        tasks.serve(("ns", "old"))
        tasks.serve(("ns", "new"))
        tasks.seen(("ns", "chat"), version("new", "20"))
        tasks.seen(("ns", "chat"), version("old", "10"))  # the listing, late
        await asyncio.sleep(0.05)
        running = tasks.running
        await tasks.unserve(("ns", "new"), gone=False)
        after = tasks.running
        await tasks.close()
        return running, after

    assert asyncio.run(scenario()) == (1, 0)


def test_accounts_gained_together_have_their_services_listed_two_at_a_time() -> None:
    """Each adoption listing holds a decoded page of whole InferenceServices until it is
    filed: a lone replica gains every account in one round, and listed all of them at
    once."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
    from test_claim_rule import RecordingKube, _service  # noqa: PLC0415

    def body_of(account: str) -> dict[str, Any]:
        body = _service(f"svc-of-{account}", "2026-05-10T08:00:00Z", replicas=2)
        body["spec"]["accountRef"] = {"name": account}
        return body

    class CountingLister:
        def __init__(self) -> None:
            self.listing = self.most = self.listed = 0

        async def list_pages(
            self, plural: str, namespace: str | None, *, field_selector: str | None = None
        ) -> Any:
            self.listing += 1
            self.most = max(self.most, self.listing)
            await asyncio.sleep(0.02)
            self.listing -= 1
            self.listed += 1
            yield [body_of((field_selector or "").partition("=")[2])]

    accounts = [("ns", f"acct-{i}") for i in range(6)]

    async def scenario() -> tuple[int, int, int]:
        lister = CountingLister()
        runtime = Runtime(RecordingKube(), Metrics(), allow_list=DEFAULT_ALLOW_LIST)  # type: ignore[arg-type]
        tasks = ServiceTasks(
            runtime, lister, lambda: None,  # type: ignore[arg-type]
            may_act=lambda _: True, held_event=lambda _: asyncio.Event(),
        )  # fmt: skip
        tasks.start()
        for account in accounts:
            runtime.account_seen(account, True)
            tasks.seen(("ns", f"svc-of-{account[1]}"), body_of(account[1]))  # not kept yet
        for account in accounts:
            tasks.serve(account)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if lister.listed == len(accounts):
                break
        kept = sum(1 for account in accounts if ("ns", f"svc-of-{account[1]}") in tasks._bodies)
        await tasks.close()
        return lister.most, lister.listed, kept

    most, listed, kept = asyncio.run(scenario())
    assert (most, listed, kept) == (2, 6, 6)
