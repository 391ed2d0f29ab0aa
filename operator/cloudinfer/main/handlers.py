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
from cloudinfer.main.kube import KubernetesAccess
from cloudinfer.main.settings import Settings
from cloudinfer.main.sharding import Sharder
from cloudinfer.reconcile.claims import is_deleting
from cloudinfer.reconcile.executor import account_key
from cloudinfer.reconcile.fence import NotHolder
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL, SERVICES_PLURAL
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

# Longest idle wait of a service reconciler; observations and spec changes wake it sooner.
MAX_IDLE_SECONDS = 300.0
# After an unexpected exception, retry the reconcile after this long.
CRASH_BACKOFF_SECONDS = 10.0
EVENT_FLUSH_SECONDS = 5.0
# Sharding: how long a daemon of an account held elsewhere sleeps between looks (a gain of
# the account, a spec change and the daemon's stop wake it sooner).
PARKED_SECONDS = 60.0
SHARD_RETRY_SECONDS = 10.0
"""Sharding: how often a replica not holding the account of a service being deleted looks
whether the holder has released it."""


class State:
    """Process-wide state set up at startup (Kopf handlers are module-level functions)."""

    settings: Settings = Settings.model_construct()  # until main() parses the real ones
    runtime: Runtime | None = None
    events: EventPoster | None = None
    holds: HoldKeeper | None = None
    deletion: StopOnDelete | None = None
    inventory: Inventory | None = None
    reconcilers: dict[tuple[str, str], ServiceReconciler] = {}  # noqa: RUF012
    kube: KubernetesAccess | None = None
    sharding: Sharder | None = None
    """Sharding mode: the accounts this replica holds; None: every account (peering)."""
    parked: dict[tuple[str, str], asyncio.Event] = {}  # noqa: RUF012
    """Sharding: services of accounts held elsewhere, woken by their spec changing."""


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
    if not State.settings.peered:
        settings.peering.standalone = True
    else:
        settings.peering.name = State.settings.peering
        settings.peering.priority = State.settings.priority


@kopf.on.startup()
async def start_sharding(**_: Any) -> None:
    if State.sharding is not None:
        State.sharding.on_change = _shard_changed
        State.sharding.start()


def _shard_changed(key: tuple[str, str], held: bool) -> None:
    """An account was gained or lost: its observer and its services' daemons look again."""
    rt = State.runtime
    if rt is not None and not held and (observer := rt.observers.get(key)) is not None:
        observer.wake()
    if held and State.holds is not None:
        State.holds.resync(key)
    if not held:
        for (namespace, _), reconciler in list(State.reconcilers.items()):
            if namespace == key[0]:
                reconciler.waker.set()


def _handing_over(stopped: kopf.DaemonStopped) -> bool:
    """The operator exits or pauses (peering): another process takes its work over."""
    leaving = (
        kopf.DaemonStoppingReason.OPERATOR_EXITING | kopf.DaemonStoppingReason.OPERATOR_PAUSING
    )
    return stopped.reason is not None and bool(stopped.reason & leaving)


def _holds(key: tuple[str, str]) -> bool:
    return State.sharding is None or State.sharding.holds(key)


async def _park(key: tuple[str, str], stopped: kopf.DaemonStopped, *also: asyncio.Event) -> None:
    """Sharding: wait until this replica holds the account, `stopped`, or one of `also`."""
    assert State.sharding is not None
    waits = [
        asyncio.ensure_future(State.sharding.held_event(key).wait()),
        asyncio.ensure_future(stopped.wait()),
        *(asyncio.ensure_future(event.wait()) for event in also),
    ]
    try:
        await asyncio.wait(waits, timeout=PARKED_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


@kopf.on.cleanup()
async def flush_events(**_: Any) -> None:
    """Events queued at shutdown (the last cloud writes') get a few seconds to go out; in
    sharding mode the held accounts are handed back first."""
    if State.sharding is not None:
        await State.sharding.close()
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
    while not stopped:
        if not _holds(key):  # sharding: another replica observes it
            await _park(key, stopped)
            continue
        observer = rt.observer(key)
        try:
            await observer.run(
                body, stopped=lambda: bool(stopped) or not _holds(key), sleep=asyncio.sleep
            )
        finally:
            rt.drop_observer(key, tell_services=_holds(key) and not _handing_over(stopped))


def _account_seen(key: Key, body: Mapping[str, Any]) -> None:
    """Feeds Runtime.accounts, the in-use holds and (sharding) the accounts to share out,
    those being deleted included: their services' Stop-on-delete needs a holder."""
    if State.runtime is not None:
        State.runtime.account_seen(key, not is_deleting(body))
    if State.sharding is not None:
        State.sharding.want(key, True)
    if State.holds is not None:
        State.holds.account_seen(key, body)


def _account_gone(key: Key) -> None:
    if State.holds is not None:
        State.holds.account_gone(key)
    if State.runtime is not None:
        State.runtime.account_seen(key, False)
    if State.sharding is not None:
        State.sharding.want(key, False)


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
    parked = State.parked.get((namespace or "", name))
    if parked is not None:
        parked.set()  # its accountRef may name another account now


@kopf.daemon(GROUP, VERSION, "inferenceservices", cancellation_timeout=10.0)
async def service_reconciler(
    *, body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    namespace = namespace or ""
    rt = runtime()
    await listed()
    while not stopped:
        if _holds(account_key(body)):
            await _reconcile(rt, body, namespace, name, stopped)
        else:  # sharding: another replica serves its account; no reconciler here
            parked = State.parked[(namespace, name)] = asyncio.Event()
            try:
                await _park(account_key(body), stopped, parked)
            finally:
                State.parked.pop((namespace, name), None)


async def _reconcile(
    rt: Runtime, body: kopf.Body, namespace: str, name: str, stopped: kopf.DaemonStopped
) -> None:
    """Reconcile until stopped, or (sharding) until this replica no longer holds the
    service's account."""
    reconciler = ServiceReconciler(rt, body)
    State.reconcilers[(namespace, name)] = reconciler
    queue = rt.metrics.queue_depth.labels("inferenceservice")
    try:
        while not stopped and _holds(account_key(body)):
            reconciler.waker.clear()
            queue.inc()  # reconciles in progress, including those waiting for rate budget
            try:
                outcome = await reconciler.reconcile()
                timeout = _seconds_until(outcome.wake_at)
            except (CloudError, OSError, kopf.TemporaryError, NotHolder) as err:
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


async def _our_turn_to_stop(body: kopf.Body) -> bool:
    """Sharding: wait until this replica holds the service's account (True), or until the
    replica holding it has released the resource (False). Waiting here, rather than a
    TemporaryError, keeps Kopf from posting a Warning event every retry on every replica."""
    assert State.sharding is not None and State.kube is not None
    key = account_key(body)
    meta = body.get("metadata") or {}
    while not State.sharding.may_act(key):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                State.sharding.held_event(key).wait(), timeout=SHARD_RETRY_SECONDS
            )
        finalizers = await State.kube.finalizers(
            SERVICES_PLURAL, str(meta.get("namespace")), str(meta.get("name"))
        )
        if finalizers is None or FINALIZER not in finalizers:
            return False
    return True


def _stop_on_delete(*, spec: kopf.Spec, **_: Any) -> bool:
    policy = spec.get("policy") or {}
    return bool(policy.get("onDelete") == "Stop")


@kopf.on.delete(GROUP, VERSION, "inferenceservices", when=_stop_on_delete)
async def stop_before_release(*, body: kopf.Body, **_: Any) -> None:
    """policy.onDelete=Stop: stop the cloud service, then let the resource go (deletion.py)."""
    await listed()
    if State.sharding is not None and not await _our_turn_to_stop(body):
        return  # the replica holding the account stopped it and released the resource
    await deletion().release(body)
