"""The InferenceServices' reconcilers and stops-on-delete, as the operator's own tasks.

Kopf delivers the watch events (handlers.service_event) and pauses them on a standby peer,
but keeps no per-object daemon for InferenceServices: one daemon each cost ~40 KB and Kopf's
per-event machinery for every object (bench/README.md, "What grows with N"). Here:

- the latest body of every served InferenceService is kept (without managedFields), fed by the
  start-up listing (inventory.py) and the events;
- a service whose CloudAccount this process serves (its observer daemon runs here: held, in
  sharding mode; not paused, with peering) has one reconcile task. When the account stops
  being served here, its services' tasks stop with it;
- a service whose CloudAccount does not exist gets one pass per change, which reports it
  (in sharding mode on the replica the hash picks for that missing account);
- `cloudinfer.dev/finalizer` on an InferenceService is ours: added while `policy.onDelete`
  is Stop, removed otherwise; once the resource is being deleted, removed after the stop
  (deletion.py). Kopf's own finalizer now has another name (handlers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cloudinfer.api.conditions import FINALIZER
from cloudinfer.cloud.errors import CloudError
from cloudinfer.main.deletion import RetryLater, StopOnDelete
from cloudinfer.main.holds import guarded_finalizer_ops
from cloudinfer.main.kube import KubeApiError, KubernetesAccess, MetadataConflict
from cloudinfer.reconcile.claims import is_deleting
from cloudinfer.reconcile.executor import account_key, resource_name
from cloudinfer.reconcile.fence import NotHolder
from cloudinfer.reconcile.kube_access import SERVICES_PLURAL
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

Key = tuple[str, str]

MAX_IDLE_SECONDS: Final = 300.0
"""Longest idle wait of a service reconciler; observations and spec changes wake it sooner."""
CRASH_BACKOFF_SECONDS: Final = 10.0
"""After an unexpected exception, retry the reconcile after this long."""
STOP_GRACE_SECONDS: Final = 8.0
"""When an account stops being served here, its reconcilers get this long to finish their
pass before they are cancelled (below the account daemon's 10 s cancellation timeout)."""
TURN_RETRY_SECONDS: Final = 10.0
"""Sharding: how often a replica that does not hold the account of a service being deleted
looks again (gaining the account and the finalizer's removal wake it sooner)."""
START_BATCH: Final = 50
"""Reconcilers started per turn of the event loop (see `_start_paced`)."""
PATCH_RETRY_SECONDS: Final = 5.0
BAD_REQUEST: Final = 400
ADOPTING_AT_ONCE: Final = 2
"""Accounts whose services are listed at the same time when accounts are gained: each
listing holds a decoded page of up to 500 whole InferenceServices (~7 MB) until its services
are filed, and a lone replica gains every account in one round."""
ORPHAN_PASSES: Final = 3
"""Passes of a service whose CloudAccount is missing, per change (each after a write)."""


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as kept: managedFields and Kopf's old diff-base annotation are never read."""
    kept = dict(body)
    meta = dict(kept.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "cloudinfer.dev/last-handled-configuration" in annotations:
        meta["annotations"] = {
            k: v for k, v in annotations.items() if k != "cloudinfer.dev/last-handled-configuration"
        }
    kept["metadata"] = meta
    return kept


def _older(new: Mapping[str, Any], kept: Mapping[str, Any]) -> bool:
    """Whether `new` is an older version than `kept` (resourceVersions compared as the numbers
    etcd makes them; anything else counts as newer)."""
    versions = [str((b.get("metadata") or {}).get("resourceVersion") or "") for b in (new, kept)]
    return all(v.isdigit() for v in versions) and int(versions[0]) < int(versions[1])


def _stops_on_delete(body: Mapping[str, Any]) -> bool:
    return ((body.get("spec") or {}).get("policy") or {}).get("onDelete") == "Stop"


def _finalizers(body: Mapping[str, Any]) -> list[str]:
    return list((body.get("metadata") or {}).get("finalizers") or [])


def wakes_reconciler(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a new body can change what the reconciler does: not when only the status (its
    own write, echoed by the watch) and the resourceVersion moved."""
    if {k: v for k, v in old.items() if k not in ("status", "metadata")} != {
        k: v for k, v in new.items() if k not in ("status", "metadata")
    }:
        return True
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return {k: v for k, v in old_meta.items() if k != "resourceVersion"} != {
        k: v for k, v in new_meta.items() if k != "resourceVersion"
    }


def _seconds_until(when: datetime.datetime | None) -> float:
    if when is None:
        return MAX_IDLE_SECONDS
    delta = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(0.5, min(MAX_IDLE_SECONDS, delta + 0.5))


@dataclass
class _Running:
    reconciler: ServiceReconciler
    task: asyncio.Task[None] | None = None
    stopping: bool = False


@dataclass
class _Account:
    services: set[Key] = field(default_factory=set)
    served: bool = False


class ServiceTasks:
    """Every served InferenceService's latest body, and the tasks that act for them."""

    def __init__(
        self,
        runtime: Runtime,
        kube: KubernetesAccess,
        deletion: Callable[[], StopOnDelete],
        *,
        may_act: Callable[[Key], bool] = lambda _: True,
        held_event: Callable[[Key], asyncio.Event] | None = None,
    ) -> None:
        self._runtime = runtime
        self._kube = kube
        self._deletion = deletion
        self._may_act = may_act
        """Sharding: whether this replica acts for a (missing) account's services."""
        self._held_event = held_event
        self._sharded = held_event is not None
        self._bodies: dict[Key, dict[str, Any]] = {}
        """Sharding: only of the services this replica may act for (see `_keeps`)."""
        self._account_of: dict[Key, Key] = {}
        """Every served InferenceService's CloudAccount."""
        self._accounts: dict[Key, _Account] = {}
        self._running: dict[Key, _Running] = {}
        self._stops: dict[Key, asyncio.Task[None]] = {}
        self._stop_wakers: dict[Key, asyncio.Event] = {}
        self._orphan_passes: dict[Key, asyncio.Task[None]] = {}
        self._orphan_again: set[Key] = set()
        self._started = False
        self._closing = False
        self._adopting: dict[Key, asyncio.Task[None]] = {}
        self._adopt_slots = asyncio.Semaphore(ADOPTING_AT_ONCE)
        self._to_start: deque[tuple[Key, _Running]] = deque()
        self._starter: asyncio.Task[None] | None = None

    # -- what the handlers tell ------------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self) -> None:
        """Every object is listed (inventory.py): act for all of them."""
        if self._started:
            return
        self._started = True
        for key in list(self._bodies):
            self._consider(key)

    def seen(self, key: Key, body: Mapping[str, Any]) -> None:
        old = self._bodies.get(key)
        if old is not None and _older(body, old):
            return  # a listing raced the watch (adopting an account): the kept body is newer
        account = account_key(body)
        old_account = self._account_of.get(key)
        if old_account != account:
            if old_account is not None:
                self._forget_in(old_account, key)
            self._account_of[key] = account
            self._accounts.setdefault(account, _Account()).services.add(key)
        if not self._keeps(account, body):
            self._bodies.pop(key, None)  # another replica acts for it (sharding)
            self._stop(key)
            return
        new = self._bodies[key] = slim(body)
        if (waker := self._stop_wakers.get(key)) is not None:
            waker.set()
        if old is not None and not wakes_reconciler(old, new):
            if (running := self._running.get(key)) is not None:
                running.reconciler.saw(new)
            return  # only its status moved (our own write, echoed)
        running = self._running.get(key)
        if running is not None and old_account == account and not is_deleting(new):
            running.reconciler.saw(new)
            running.reconciler.waker.set()
            return
        self._stop(key)  # deleting, or its account changed: the task exits, then _consider
        self._consider(key)

    def gone(self, key: Key) -> None:
        body = self._bodies.pop(key, None)
        account = self._account_of.pop(key, None)
        if account is not None:
            self._forget_in(account, key)
        self._stop(key)
        stop = self._stops.pop(key, None)
        if stop is not None:
            stop.cancel()
        self._stop_wakers.pop(key, None)
        if body is not None:
            self._deletion().forget(str(body.get("metadata", {}).get("uid")))

    def serve(self, account: Key) -> None:
        """The account's observer runs here now: its services get their tasks (in sharding
        mode, after their bodies are listed if this replica did not keep them)."""
        entry = self._accounts.setdefault(account, _Account())
        entry.served = True
        for key in list(entry.services):
            self._consider(key)
        if any(key not in self._bodies for key in entry.services) and account not in self._adopting:
            self._adopting[account] = asyncio.get_running_loop().create_task(
                self._adopt(account), name=f"adopt {account[0]}/{account[1]}"
            )

    async def unserve(self, account: Key, *, gone: bool) -> None:
        """The account's observer stopped here. `gone`: because the account is (being)
        deleted: its services then make one pass each, which reports it."""
        entry = self._accounts.get(account)
        if entry is None:
            return
        entry.served = False
        if (adopting := self._adopting.pop(account, None)) is not None:
            adopting.cancel()
        keys = [key for key in entry.services if key in self._running]
        stopping = [task for key in keys if (task := self._stop(key)) is not None]
        if stopping:
            _, late = await asyncio.wait(stopping, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
        for key in list(entry.services):
            body = self._bodies.get(key)
            if body is not None and not self._keeps(account, body):
                del self._bodies[key]  # sharding: the new holder has its own
        if gone:
            for key in list(entry.services):
                self._consider(key)
        elif not entry.services:
            self._accounts.pop(account, None)

    def _keeps(self, account: Key, body: Mapping[str, Any]) -> bool:
        """Whether this replica keeps the body: its account is served here (whatever the
        fence says this instant: a lapse too short for the observer to stop must not lose a
        service's task), the account is missing and the hash gives it to this replica (always
        true without sharding), or the service waits for its stop on delete."""
        entry = self._accounts.get(account)
        if entry is not None and entry.served:
            return True
        if account not in self._runtime.accounts and self._may_act(account):
            return True
        return not self._sharded or (is_deleting(body) and FINALIZER in _finalizers(body))

    async def _adopt(self, account: Key) -> None:
        """Sharding: list the services of an account just gained (the bodies of accounts held
        elsewhere are not kept); retried while the account is served here."""
        namespace, name = account
        try:
            while True:
                try:
                    async with self._adopt_slots:
                        async for page in self._list_of(account):
                            for body in page:
                                meta = body.get("metadata") or {}
                                if account_key(body) == account:
                                    self.seen((namespace, str(meta.get("name") or "")), body)
                    return
                except (KubeApiError, OSError, TimeoutError) as err:
                    logger.warning(
                        "listing the InferenceServices of CloudAccount %s failed: %s", name,
                        str(err) or type(err).__name__, extra={"resource": f"{namespace}/{name}"},
                    )  # fmt: skip
                    await asyncio.sleep(PATCH_RETRY_SECONDS)
        finally:
            if self._adopting.get(account) is asyncio.current_task():
                del self._adopting[account]

    async def _list_of(self, account: Key) -> AsyncIterator[list[dict[str, Any]]]:
        """The account's services: by field selector where the server supports it
        (Kubernetes 1.31+, the CRD's selectableFields), else the namespace, filtered here."""
        namespace, name = account
        try:
            async for page in self._kube.list_pages(
                SERVICES_PLURAL, namespace, field_selector=f"spec.accountRef.name={name}"
            ):
                yield page
        except KubeApiError as err:
            if err.status != BAD_REQUEST:
                raise
            async for page in self._kube.list_pages(SERVICES_PLURAL, namespace):
                yield page

    async def close(self) -> None:
        self._closing = True
        tasks = [
            *([self._starter] if self._starter is not None else []),
            *self._adopting.values(),
            *(r.task for r in self._running.values() if r.task is not None),
            *self._stops.values(),
            *self._orphan_passes.values(),
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- which task a service needs ----------------------------------------------------------

    def _forget_in(self, account: Key, key: Key) -> None:
        entry = self._accounts.get(account)
        if entry is not None:
            entry.services.discard(key)
            if not entry.services and not entry.served:
                del self._accounts[account]

    def _consider(self, key: Key) -> None:
        if not self._started or self._closing:
            return
        body = self._bodies.get(key)
        if body is None:
            return
        if is_deleting(body):
            self._stop(key)
            if FINALIZER in _finalizers(body) and key not in self._stops:
                self._start_stop(key)
            return
        account = account_key(body)
        entry = self._accounts.get(account)
        if entry is not None and entry.served:
            if key not in self._running:
                self._start_reconciler(key, body)
        elif account not in self._runtime.accounts and self._may_act(account):
            self._orphan_pass(key)

    def _start_reconciler(self, key: Key, body: dict[str, Any]) -> None:
        running = _Running(ServiceReconciler(self._runtime, body))
        self._running[key] = running
        self._to_start.append((key, running))
        if self._starter is None or self._starter.done():
            self._starter = asyncio.get_running_loop().create_task(
                self._start_paced(), name="start reconcilers"
            )

    async def _start_paced(self) -> None:
        """At most START_BATCH reconcilers start per turn of the event loop. Their first
        passes are CPU (parse, plan, build a status): thousands at once, on gaining or
        starting with many services, would hold the loop for seconds, and with it the Lease
        renewals that keep this replica's fence open (sharding)."""
        while self._to_start:
            for _ in range(min(START_BATCH, len(self._to_start))):
                key, running = self._to_start.popleft()
                if self._running.get(key) is not running:
                    continue
                if running.stopping:  # stopped before it started
                    del self._running[key]
                    self._consider(key)
                    continue
                running.task = asyncio.get_running_loop().create_task(
                    self._reconcile(key, running), name=f"reconcile {key[0]}/{key[1]}"
                )
            await asyncio.sleep(0)

    def _stop(self, key: Key) -> asyncio.Task[None] | None:
        running = self._running.get(key)
        if running is None:
            return None
        running.stopping = True
        running.reconciler.waker.set()
        if running.task is None:  # not started yet: nothing to wait for
            del self._running[key]
        return running.task

    # -- the reconcile loop -----------------------------------------------------------------

    async def _reconcile(self, key: Key, running: _Running) -> None:
        reconciler = running.reconciler
        queue = self._runtime.metrics.queue_depth.labels("inferenceservice")
        name = f"{key[0]}/{key[1]}"
        try:
            while not running.stopping:
                reconciler.waker.clear()
                queue.inc()  # reconciles in progress, including those waiting for rate budget
                writes = reconciler.status_writes
                try:
                    await self._keep_finalizer(reconciler.body)
                    outcome = await reconciler.reconcile()
                    timeout = _seconds_until(outcome.wake_at)
                    if reconciler.status_writes != writes:
                        reconciler.waker.set()  # a pass over what it wrote (see status_writes)
                except (CloudError, OSError, KubeApiError, NotHolder) as err:
                    logger.warning(  # a timeout's message is empty: name its type then
                        "reconcile failed: %s", str(err) or type(err).__name__,
                        extra={"resource": name},
                    )  # fmt: skip
                    timeout = CRASH_BACKOFF_SECONDS
                except Exception:
                    # An operator bug must not kill the loop for this resource: log, retry.
                    logger.exception("reconcile crashed", extra={"resource": name})
                    timeout = CRASH_BACKOFF_SECONDS
                finally:
                    queue.dec()
                if running.stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):  # no task per wait, as wait_for makes
                        await reconciler.waker.wait()
        finally:
            reconciler.detach()
            if self._running.get(key) is running:
                del self._running[key]
            if is_deleting(reconciler.body):
                self._runtime.claims.drop(key)  # the next claimant takes over now
            self._consider(key)  # e.g. its account changed: the new one's task, if served

    async def _keep_finalizer(self, body: Mapping[str, Any]) -> None:
        """Our finalizer while `policy.onDelete` is Stop, and only then. A failure is logged
        and tried again at the next pass: the reconcile goes on."""
        wanted = _stops_on_delete(body)
        if (FINALIZER in _finalizers(body)) == wanted:
            return
        try:
            await self._set_finalizer(body, present=wanted)
        except (KubeApiError, OSError, TimeoutError) as err:
            logger.warning(
                "%s the finalizer %s failed: %s", "adding" if wanted else "removing", FINALIZER,
                str(err) or type(err).__name__, extra={"resource": resource_name(body)},
            )  # fmt: skip

    async def _set_finalizer(self, body: Mapping[str, Any], *, present: bool) -> bool:
        """Add or remove our finalizer (a patch guarded by the finalizer list, holds.py); if
        someone changed the finalizers meanwhile, False: the next body the watch brings is
        tried again."""
        meta: Mapping[str, Any] = body.get("metadata") or {}
        ops = guarded_finalizer_ops(meta, FINALIZER, present)
        if not ops or (present and meta.get("deletionTimestamp")):
            return True  # no finalizer can be added to an object being deleted
        try:
            await self._kube.patch_metadata(
                "InferenceService", str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                None, ops,
            )  # fmt: skip
        except MetadataConflict:
            return False
        return True

    # -- services whose CloudAccount does not exist ------------------------------------------

    def _orphan_pass(self, key: Key) -> None:
        """One reconcile pass, which reports the missing CloudAccount; a change meanwhile
        makes one more."""
        if key in self._orphan_passes:
            self._orphan_again.add(key)
            return
        task = asyncio.get_running_loop().create_task(
            self._orphan(key), name=f"report {key[0]}/{key[1]}"
        )
        self._orphan_passes[key] = task

    async def _orphan(self, key: Key) -> None:
        try:
            while True:
                body = self._bodies.get(key)
                if body is None or is_deleting(body):
                    return
                reconciler = ServiceReconciler(self._runtime, body)
                try:
                    for _ in range(ORPHAN_PASSES):  # one more over what a pass wrote
                        writes = reconciler.status_writes
                        await reconciler.reconcile()
                        if reconciler.status_writes == writes:
                            break
                except Exception as err:
                    logger.warning(
                        "reporting the missing CloudAccount failed: %s",
                        str(err) or type(err).__name__, extra={"resource": resource_name(body)},
                    )  # fmt: skip
                finally:
                    reconciler.detach()
                if key not in self._orphan_again:
                    return
                self._orphan_again.discard(key)
        finally:
            self._orphan_passes.pop(key, None)
            self._orphan_again.discard(key)

    # -- stop on delete ---------------------------------------------------------------------

    def _start_stop(self, key: Key) -> None:
        self._stop_wakers[key] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            self._stop_then_release(key), name=f"stop on delete {key[0]}/{key[1]}"
        )
        self._stops[key] = task

    async def _stop_then_release(self, key: Key) -> None:
        """policy.onDelete=Stop: stop the cloud service, then remove our finalizer
        (deletion.py); another policy: remove it at once. In sharding mode only the replica
        holding the account does it; the others wait until it has."""
        released = False  # the stop is done (or not needed): only the finalizer is left
        try:
            while (body := self._bodies.get(key)) is not None and FINALIZER in _finalizers(body):
                if _stops_on_delete(body) and not released:
                    account = account_key(body)
                    if not self._may_act(account):
                        await self._wait_turn(key, account)
                        continue
                    try:
                        await self._deletion().release(body)
                    except RetryLater as later:
                        await asyncio.sleep(later.delay)
                        continue
                    released = True
                try:
                    if await self._set_finalizer(body, present=False):
                        return
                    await self._wait_turn(key, None)  # changed meanwhile: its next body
                except (KubeApiError, OSError, TimeoutError) as err:
                    logger.warning(
                        "removing the finalizer failed: %s", str(err) or type(err).__name__,
                        extra={"resource": resource_name(body)},
                    )  # fmt: skip
                    await asyncio.sleep(PATCH_RETRY_SECONDS)
        except Exception:
            logger.exception("stop on delete crashed", extra={"resource": f"{key[0]}/{key[1]}"})
            raise
        finally:
            if self._stops.get(key) is asyncio.current_task():
                del self._stops[key]
                self._stop_wakers.pop(key, None)

    async def _wait_turn(self, key: Key, account: Key | None) -> None:
        """Until this replica holds the account, the body changes (e.g. the holder removed
        the finalizer), or a while has passed."""
        waits: list[Awaitable[Any]] = []
        if self._held_event is not None and account is not None:
            waits.append(self._held_event(account).wait())
        waker = self._stop_wakers.get(key)
        if waker is not None:
            waker.clear()
            waits.append(waker.wait())
        futures = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(futures, timeout=TURN_RETRY_SECONDS) if futures else None
        finally:
            for future in futures:
                future.cancel()
