"""Kopf glue: one daemon per CloudAccount (the observer, and the supervisor of its services'
reconcile tasks, services.py), the event handlers that feed the registries and wake them,
and the in-use finalizers that keep what a stop on delete needs (holds.py).

No daemon polls the cloud per service: observation is batched per account. InferenceServices
have no Kopf daemon or Kopf finalizer: Kopf only delivers their events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.api.conditions import FINALIZER, OBSERVER_FINALIZER
from cloudinfer.main.deletion import StopOnDelete
from cloudinfer.main.events import EventPoster
from cloudinfer.main.holds import HoldKeeper, guarded_finalizer_ops
from cloudinfer.main.inventory import Inventory, Key
from cloudinfer.main.kube import KubeApiError, KubernetesAccess, MetadataConflict
from cloudinfer.main.services import ServiceTasks
from cloudinfer.main.settings import Settings
from cloudinfer.main.sharding import Sharder
from cloudinfer.reconcile.claims import is_deleting
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL, SERVICES_PLURAL
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

EVENT_FLUSH_SECONDS = 5.0
# Sharding: how long a daemon of an account held elsewhere sleeps between looks (a gain of
# the account and the daemon's stop wake it sooner).
PARKED_SECONDS = 60.0


class State:
    """Process-wide state set up at startup (Kopf handlers are module-level functions)."""

    settings: Settings = Settings.model_construct()  # until main() parses the real ones
    runtime: Runtime | None = None
    events: EventPoster | None = None
    holds: HoldKeeper | None = None
    deletion: StopOnDelete | None = None
    inventory: Inventory | None = None
    services: ServiceTasks | None = None
    kube: KubernetesAccess | None = None
    sharding: Sharder | None = None
    """Sharding mode: the accounts this replica holds; None: every account (peering)."""
    starter: asyncio.Task[None] | None = None
    unfinalizing: set[tuple[str, str]] = set()  # noqa: RUF012
    """CloudAccounts whose old Kopf finalizer is being removed."""


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
    # Kopf's finalizer is only for the CloudAccount daemons; FINALIZER is ours (services.py).
    settings.persistence.finalizer = OBSERVER_FINALIZER
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
    if State.inventory is not None and State.inventory.watched:
        State.inventory.start()  # no standby peer to keep it from
    State.starter = asyncio.get_running_loop().create_task(_start_services(), name="services")


async def _start_services() -> None:
    """The services' tasks start once everything is listed (the first event or daemon starts
    the listing, so a standby peer neither lists nor starts any)."""
    if State.inventory is not None and State.services is not None:
        await State.inventory.ready.wait()
        State.services.start()


def _shard_changed(key: tuple[str, str], held: bool) -> None:
    """An account was gained or lost: its observer daemon looks again (and with it the
    account's service tasks)."""
    rt = State.runtime
    if rt is not None and not held and (observer := rt.observers.get(key)) is not None:
        observer.wake()
    if held and State.holds is not None:
        State.holds.resync(key)


def _handing_over(stopped: kopf.DaemonStopped) -> bool:
    """The operator exits or pauses (peering): another process takes its work over."""
    leaving = (
        kopf.DaemonStoppingReason.OPERATOR_EXITING | kopf.DaemonStoppingReason.OPERATOR_PAUSING
    )
    return stopped.reason is not None and bool(stopped.reason & leaving)


def _holds(key: tuple[str, str]) -> bool:
    return State.sharding is None or State.sharding.holds(key)


async def _park(key: tuple[str, str], stopped: kopf.DaemonStopped) -> None:
    """Sharding: wait until this replica holds the account, or `stopped`."""
    assert State.sharding is not None
    waits = [
        asyncio.ensure_future(State.sharding.held_event(key).wait()),
        asyncio.ensure_future(stopped.wait()),
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
    if State.starter is not None:
        State.starter.cancel()
    if State.services is not None:
        await State.services.close()
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
    return State.services.running if State.services is not None else 0


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
        services = State.services
        if services is not None:
            services.serve(key)
        try:
            await observer.run(
                body, stopped=lambda: bool(stopped) or not _holds(key), sleep=asyncio.sleep
            )
        finally:
            gone = _holds(key) and not _handing_over(stopped)
            rt.drop_observer(key, tell_services=gone)
            if services is not None:
                await services.unserve(key, gone=gone)


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
    if FINALIZER in (body.get("metadata", {}).get("finalizers") or []):
        _remove_old_finalizer(key, body)
    rt = State.runtime
    if rt is not None and type in ("MODIFIED", "ADDED"):
        observer = rt.observers.get(key)
        if observer is not None:
            observer.wake()


def _remove_old_finalizer(key: tuple[str, str], body: Mapping[str, Any]) -> None:
    """Kopf put FINALIZER on CloudAccounts before its finalizer was renamed; nothing
    removes it but this (in sharding mode the replica that acts for the account)."""
    if key in State.unfinalizing or State.kube is None:
        return
    if State.sharding is not None and not State.sharding.may_act(key):
        return
    State.unfinalizing.add(key)
    finalizers = list((body.get("metadata") or {}).get("finalizers") or [])
    task = asyncio.get_running_loop().create_task(_unfinalize(State.kube, key, finalizers))
    task.add_done_callback(lambda _: State.unfinalizing.discard(key))


async def _unfinalize(kube: KubernetesAccess, key: tuple[str, str], finalizers: list[str]) -> None:
    """One guarded patch (the finalizer list as the event showed it); if the list changed
    meanwhile, the event of that change tries again."""
    ops = guarded_finalizer_ops({"finalizers": finalizers}, FINALIZER, present=False)
    try:
        await kube.patch_metadata("CloudAccount", *key, None, ops)
    except MetadataConflict:
        return
    except (KubeApiError, OSError, TimeoutError) as err:
        logger.warning(
            "removing the old finalizer %s failed: %s", FINALIZER, err,
            extra={"resource": "/".join(key)},
        )  # fmt: skip


# -- InferenceService -----------------------------------------------------------------------


def _service_seen(key: Key, body: Mapping[str, Any]) -> None:
    """Feeds the claim registry (reconcile/claims.py), the in-use holds and the services'
    tasks (waking its reconciler)."""
    if State.runtime is not None:
        State.runtime.claims.update(body)
    if State.holds is not None:
        State.holds.service_seen(key, body)
    if State.services is not None:
        State.services.seen(key, body)


def _service_gone(key: Key) -> None:
    """Gone: the next claimant takes over now, and what it held in use is released if
    nothing else needs it."""
    if State.runtime is not None:
        State.runtime.claims.drop(key)
    if State.holds is not None:
        State.holds.service_gone(key)
    if State.services is not None:
        State.services.gone(key)


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


async def service_event(
    *, body: kopf.Body, namespace: str | None, name: str, type: str, **_: Any
) -> None:
    """With peering: keeps the registries current and wakes the reconciler (registered by
    `deliver_service_events`). Async, so it runs on the event loop and not in Kopf's thread
    pool; its "succeeded" log line is filtered (cli.py). Without peering the inventory
    watches InferenceServices itself."""
    key = (namespace or "", name)
    if State.inventory is not None:
        State.inventory.event(SERVICES_PLURAL, key)
        State.inventory.start()  # with no CloudAccount, no daemon starts it
    if type == "DELETED":
        _service_gone(key)
        return
    _service_seen(key, body)


def deliver_service_events() -> None:
    """With peering, Kopf delivers InferenceServices' events (and pauses them on a standby);
    without, the inventory watches them itself (inventory.py)."""
    kopf.on.event(GROUP, VERSION, SERVICES_PLURAL)(service_event)
