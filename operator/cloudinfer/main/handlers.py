"""Kopf glue: one daemon per CloudAccount (the observer), one per InferenceService (the
reconciler, idle until woken), event handlers that wake them, the Stop-on-delete handler
(deletion.py) and the in-use finalizers that keep what it needs (holds.py).

No daemon polls the cloud per service: observation is batched per account.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.api.conditions import FINALIZER
from cloudinfer.cloud.errors import CloudError
from cloudinfer.main.deletion import StopOnDelete
from cloudinfer.main.events import EventPoster
from cloudinfer.main.holds import HoldKeeper
from cloudinfer.main.inventory import Inventory, Key
from cloudinfer.main.settings import Settings
from cloudinfer.reconcile.claims import is_deleting
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL, SERVICES_PLURAL
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

# Longest idle wait of a service reconciler; observations and spec changes wake it sooner.
MAX_IDLE_SECONDS = 300.0
# After an unexpected exception, retry the reconcile after this long.
CRASH_BACKOFF_SECONDS = 10.0
EVENT_FLUSH_SECONDS = 5.0


class State:
    """Process-wide state set up at startup (Kopf handlers are module-level functions)."""

    settings: Settings = Settings.model_construct()  # until main() parses the real ones
    runtime: Runtime | None = None
    events: EventPoster | None = None
    holds: HoldKeeper | None = None
    deletion: StopOnDelete | None = None
    inventory: Inventory | None = None
    reconcilers: dict[tuple[str, str], ServiceReconciler] = {}  # noqa: RUF012


def runtime() -> Runtime:
    if State.runtime is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return State.runtime


def holds() -> HoldKeeper:
    if State.holds is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return State.holds


async def listed() -> None:
    """Wait until every InferenceService and CloudAccount is known (inventory.py), then let
    the holds write. The listing starts at the first call, so a standby peer, whose handlers
    Kopf does not run, neither lists nor writes holds until it takes over."""
    if State.inventory is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    State.inventory.start()
    await State.inventory.ready.wait()
    holds().enable()


def deletion() -> StopOnDelete:
    if State.deletion is None:
        State.deletion = StopOnDelete(runtime(), holds())
    return State.deletion


@kopf.on.startup()
def configure(*, settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cloudinfer.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="cloudinfer.dev", key="last-handled-configuration"
    )
    # Our own events go through events.py; Kopf posts only its warnings about a handler.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    if State.settings.standalone:
        settings.peering.standalone = True
    else:
        settings.peering.name = State.settings.peering
        settings.peering.priority = State.settings.priority


@kopf.on.cleanup()
async def flush_events(**_: Any) -> None:
    """Events queued at shutdown (the last cloud writes') get a few seconds to go out."""
    if State.inventory is not None:
        await State.inventory.close()
    if State.holds is not None:
        await State.holds.close()
    if State.events is not None:
        await State.events.flush(EVENT_FLUSH_SECONDS)


@kopf.on.probe(id="services")
def probe_services(**_: Any) -> int:
    return len(State.reconcilers)


# -- CloudAccount ---------------------------------------------------------------------------


@kopf.daemon(GROUP, VERSION, "cloudaccounts", cancellation_timeout=10.0)
async def account_observer(
    *, body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    namespace = namespace or ""
    rt = runtime()
    await listed()
    key = (namespace, name)
    observer = rt.observer(key)
    try:
        await observer.run(body, stopped=lambda: bool(stopped), sleep=asyncio.sleep)
    finally:
        rt.drop_observer(key)


def _account_seen(key: Key, body: Mapping[str, Any]) -> None:
    """Feeds Runtime.accounts and the in-use holds."""
    if State.runtime is not None:
        State.runtime.account_seen(key, not is_deleting(body))
    if State.holds is not None:
        State.holds.account_seen(key, body)


def _account_gone(key: Key) -> None:
    if State.holds is not None:
        State.holds.account_gone(key)
    if State.runtime is not None:
        State.runtime.account_seen(key, False)


@kopf.on.event(GROUP, VERSION, "cloudaccounts")
async def account_changed(
    *, body: kopf.Body, namespace: str | None, name: str, type: str, **_: Any
) -> None:
    key = (namespace or "", name)
    if State.inventory is not None:
        State.inventory.event(ACCOUNTS_PLURAL, key)
        if State.inventory.ready.is_set() and State.holds is not None:
            State.holds.enable()  # e.g. a deleted account's record, with no daemon left
    if type == "DELETED":
        _account_gone(key)
        return
    _account_seen(key, body)
    rt = State.runtime
    if rt is not None and type in ("MODIFIED", "ADDED"):
        observer = rt.observers.get(key)
        if observer is not None:
            observer.wake()


# -- InferenceService -----------------------------------------------------------------------


def _seconds_until(when: datetime.datetime | None) -> float:
    if when is None:
        return MAX_IDLE_SECONDS
    delta = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(0.5, min(MAX_IDLE_SECONDS, delta + 0.5))


def _service_seen(key: Key, body: Mapping[str, Any]) -> None:
    """Feeds the claim registry (reconcile/claims.py) and the in-use holds."""
    if State.runtime is not None:
        State.runtime.claims.update(body)
    if State.holds is not None:
        State.holds.service_seen(key, body)


def _service_gone(key: Key) -> None:
    """Gone: the next claimant takes over now, and what it held in use is released if
    nothing else needs it."""
    if State.runtime is not None:
        State.runtime.claims.drop(key)
    if State.holds is not None:
        State.holds.service_gone(key)


class Registries:
    """The inventory's sink (inventory.py): the same calls the event handlers make."""

    def seen(self, plural: str, key: Key, body: Mapping[str, Any]) -> None:
        if plural == ACCOUNTS_PLURAL:
            _account_seen(key, body)
        else:
            _service_seen(key, body)

    def gone(self, plural: str, key: Key) -> None:
        if plural == ACCOUNTS_PLURAL:
            _account_gone(key)
        else:
            _service_gone(key)


@kopf.on.event(GROUP, VERSION, "inferenceservices")
async def service_event(
    *, body: kopf.Body, namespace: str | None, name: str, type: str, **_: Any
) -> None:
    """Keeps the registries current and wakes the reconciler. Async, so it runs on the event
    loop and not in Kopf's thread pool; its "succeeded" log line is filtered (cli.py)."""
    key = (namespace or "", name)
    if State.inventory is not None:
        State.inventory.event(SERVICES_PLURAL, key)
    if type == "DELETED":
        _service_gone(key)
        if State.deletion is not None:
            State.deletion.forget(str(body.get("metadata", {}).get("uid")))
        return
    _service_seen(key, body)
    reconciler = State.reconcilers.get(key)
    if reconciler is not None:
        reconciler.waker.set()


@kopf.daemon(GROUP, VERSION, "inferenceservices", cancellation_timeout=10.0)
async def service_reconciler(
    *, body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    namespace = namespace or ""
    rt = runtime()
    await listed()
    reconciler = ServiceReconciler(rt, body)
    State.reconcilers[(namespace, name)] = reconciler
    queue = rt.metrics.queue_depth.labels("inferenceservice")
    try:
        while not stopped:
            reconciler.waker.clear()
            queue.inc()  # reconciles in progress, including those waiting for rate budget
            try:
                outcome = await reconciler.reconcile()
                timeout = _seconds_until(outcome.wake_at)
            except (CloudError, OSError, kopf.TemporaryError) as err:
                logger.warning(  # a timeout's message is empty: name its type then
                    "reconcile failed: %s", str(err) or type(err).__name__,
                    extra={"resource": f"{namespace}/{name}"},
                )  # fmt: skip
                timeout = CRASH_BACKOFF_SECONDS
            except Exception:
                # An operator bug must not kill the loop for this resource: log and retry.
                logger.exception("reconcile crashed", extra={"resource": f"{namespace}/{name}"})
                timeout = CRASH_BACKOFF_SECONDS
            finally:
                queue.dec()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reconciler.waker.wait(), timeout=timeout)
    finally:
        reconciler.detach()
        State.reconcilers.pop((namespace, name), None)
        if is_deleting(body):
            rt.claims.drop((namespace, name))  # the next claimant takes over now


def _stop_on_delete(*, spec: kopf.Spec, **_: Any) -> bool:
    policy = spec.get("policy") or {}
    return bool(policy.get("onDelete") == "Stop")


@kopf.on.delete(GROUP, VERSION, "inferenceservices", when=_stop_on_delete)
async def stop_before_release(*, body: kopf.Body, **_: Any) -> None:
    """policy.onDelete=Stop: stop the cloud service, then let the resource go (deletion.py)."""
    await listed()
    await deletion().release(body)
