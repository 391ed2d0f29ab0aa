"""Stop on delete: `policy.onDelete: Stop` stops the cloud service, then releases the resource.

The stop needs the CloudAccount's observer (its snapshot, its provider). While the account
lives, that is its own observer. Once the account is being deleted too (a whole namespace
goes) Kopf has stopped its daemon, and after a restart Kopf starts none for it; then an
observer of its own, driven from here, serves the deletions (`ReleaseObservers`). The
CloudAccount, its Secret and CA ConfigMap are still there to read: holds.py keeps them.

Bounds, so that a namespace never stays Terminating on this: a STOP that cannot be sent
(the account is unusable, the cloud refuses it) is retried for `STOP_BOUND_SECONDS`; a cloud
service still transitioning is waited for up to `SETTLE_BOUND_SECONDS`. Past a bound the
resource is released without the stop and that is reported loudly: a Warning event
`ReleasedWithoutStop`, the metric `cloudinfer_stop_on_delete_total{result="abandoned"}` and
an error in the log. The bounds count in this operator process (a restart starts them
again). One accepted STOP releases the resource at once, so no second STOP is ever sent.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from cloudinfer.api.conditions import ConditionType, Reason
from cloudinfer.cloud.model import ObservedService, Phase, Stop
from cloudinfer.main.holds import HoldKeeper, Key
from cloudinfer.main.kube import KubeApiError
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.claims import Identity, Unknown, claimant_from
from cloudinfer.reconcile.executor import resource_name
from cloudinfer.reconcile.kube_access import SERVICES_PLURAL
from cloudinfer.reconcile.observer import AccountObserver, Snapshot
from cloudinfer.reconcile.outcomes import error_message
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

STOP_BOUND_SECONDS: Final = 30.0
"""How long failed attempts to send the STOP are retried before the resource is released."""
SETTLE_BOUND_SECONDS: Final = 300.0
"""How long a transitioning cloud service (starting, scaling) is waited for before the STOP."""
RETRY_SECONDS: Final = 10.0
"""Between attempts after a failure."""
SETTLE_POLL_SECONDS: Final = 5.0
"""Between looks at a transitioning service."""
FIRST_OBSERVATION_SECONDS: Final = 10.0
"""How long one attempt waits for an observer's first observation of the account."""
ABANDONED_REASON: Final = "ReleasedWithoutStop"


async def first_observation(observer: AccountObserver, seconds: float) -> None:
    """Wait (up to `seconds`) until the observer has observed once, or failed to."""
    deadline = time.monotonic() + seconds
    while observer.snapshot.observed_at is None and observer.snapshot.error is None:
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.2)


class ReleaseObservers:
    """Observers of CloudAccounts that have no observer of their own (being deleted, or the
    operator started after their deletion began) while a deletion needs them. Each runs
    until no InferenceService being deleted needs its account any more."""

    def __init__(self, runtime: Runtime, holds: HoldKeeper) -> None:
        self._runtime = runtime
        self._holds = holds
        self._observers: dict[Key, AccountObserver] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, key: Key) -> AccountObserver | None:
        """The account's release observer, started now if needed; None if there is no such
        CloudAccount."""
        observer = self._observers.get(key)
        if observer is not None:
            return observer
        body = self._holds.account_body(key)
        if body is None:
            return None
        rt = self._runtime
        observer = self._observers[key] = rt.new_observer(key)
        task = asyncio.get_running_loop().create_task(
            self._run(key, observer, body), name=f"release observer {key[0]}/{key[1]}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        logger.info(
            "observing CloudAccount %s/%s for the deletions that need it", *key,
            extra={"resource": "/".join(key)},
        )  # fmt: skip
        return observer

    async def _run(self, key: Key, observer: AccountObserver, body: Mapping[str, Any]) -> None:
        try:
            await observer.run(
                body, stopped=lambda: not self._holds.releasing(key), sleep=asyncio.sleep
            )
        finally:
            self._observers.pop(key, None)


@dataclass
class _Attempt:
    trying_since: float | None = None
    """time.monotonic() of the first attempt to send the STOP (or to reach the account)."""
    settling_since: float | None = None
    """time.monotonic() when the service was first seen transitioning."""


class RetryLater(Exception):
    """The stop cannot be decided yet: call `release` again after `delay` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class StopOnDelete:
    """The deletion's logic (driven by services.py): return to release the resource, raise
    RetryLater to be called again."""

    def __init__(self, runtime: Runtime, holds: HoldKeeper) -> None:
        self.runtime = runtime
        self.observers = ReleaseObservers(runtime, holds)
        self._attempts: dict[str, _Attempt] = {}

    def forget(self, uid: str) -> None:
        self._attempts.pop(uid, None)

    def _observer(self, key: Key) -> AccountObserver | None:
        rt = self.runtime
        live = rt.observers.get(key) if key in rt.accounts else None
        return live if live is not None else self.observers.get(key)

    async def release(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        uid = str(meta.get("uid"))
        key = (str(meta.get("namespace") or ""), (spec.get("accountRef") or {}).get("name", ""))
        service_id = str(spec.get("serviceId", ""))
        attempt = self._attempts.setdefault(uid, _Attempt())
        observer = self._observer(key)
        if observer is not None:
            await first_observation(observer, FIRST_OBSERVATION_SECONDS)
        snapshot = observer.snapshot if observer is not None else None
        if (
            observer is None or snapshot is None or snapshot.provider is None
            or snapshot.config is None or snapshot.observed_at is None
        ):  # fmt: skip
            why = f": {error_message(snapshot.error)}" if snapshot and snapshot.error else ""
            await self._failed(
                body, attempt, Reason.ACCOUNT_NOT_READY,
                f"cannot stop {service_id} before release: CloudAccount {key[1]} is not "
                f"ready{why}",
            )  # fmt: skip
            return
        observed = snapshot.services.get(service_id)
        if observed is None or observed.phase is Phase.STOPPED:
            self._released(uid, "not_needed")
            return  # gone or already stopped
        if self._another_claimant_manages(body, key, observer, service_id):
            self._released(uid, "skipped")
            return
        if observed.phase is Phase.TRANSITIONING:
            observer.mark_active(service_id, True)
            now = time.monotonic()
            attempt.settling_since = attempt.settling_since or now
            if now - attempt.settling_since >= SETTLE_BOUND_SECONDS:
                why = f"it was still transitioning after {SETTLE_BOUND_SECONDS:.0f} s"
                self._abandon(body, service_id, why)
                return
            raise RetryLater("waiting for the cloud to settle", delay=SETTLE_POLL_SECONDS)
        await self._send(body, attempt, snapshot, observed, observer)

    def _another_claimant_manages(
        self, body: Mapping[str, Any], key: Key, observer: AccountObserver, service_id: str
    ) -> bool:
        """Another InferenceService still names this cloud service and takes it over: stopping
        it would fight that one (docs/security.md, "Claims")."""
        rt = self.runtime
        me = claimant_from(body)
        mine = observer.claim_identity

        def identity_of(account: Key) -> Identity | Unknown | None:
            return mine if account == key else rt.identity_of(account)

        rivals = rt.claims.decide(me, identity_of).rivals if me is not None else ()
        if not rivals:
            return False
        message = (
            f"{service_id} not stopped before release: InferenceService "
            f"{rivals[0].describe()} also names it and now manages it"
        )
        logger.info(message, extra={"resource": resource_name(body)})
        rt.kube.event(body, "Normal", "StopSkipped", message)
        return True

    async def _send(
        self,
        body: Mapping[str, Any],
        attempt: _Attempt,
        snapshot: Snapshot,
        observed: ObservedService,
        observer: AccountObserver,
    ) -> None:
        """Send the one STOP; released once the cloud accepts it."""
        rt = self.runtime
        service_id = observed.service_id
        uid = str((body.get("metadata") or {}).get("uid"))
        attempt.trying_since = attempt.trying_since or time.monotonic()
        try:
            # The executor logs the write, counts it and posts its event, as for any write;
            # its ledger entry is not kept: the resource is about to go.
            sent = await rt.executor.execute(
                body, snapshot, observed, Stop(service_id=service_id, reason="onDelete: Stop")
            )
        except Exception as err:
            # The account's own observer closed its client under us: its CloudAccount is
            # being deleted too. The next attempt uses a release observer.
            logger.warning(
                "stop before release interrupted: %s", err, extra={"resource": resource_name(body)}
            )
            await self._failed(
                body, attempt, Reason.ACCOUNT_NOT_READY,
                f"stopping {service_id} before release was interrupted: {type(err).__name__}",
            )  # fmt: skip
            return
        if sent.error is not None:
            await self._failed(
                body, attempt, sent.reason,
                f"stopping {service_id} before release failed: {error_message(sent.error)}",
                event=False,  # the executor posted it
            )  # fmt: skip
            return
        observer.mark_active(service_id, True)
        self._released(uid, "stopped")

    async def _failed(
        self,
        body: Mapping[str, Any],
        attempt: _Attempt,
        reason: Reason | str,
        message: str,
        *,
        event: bool = True,
    ) -> None:
        """Report why the stop could not be sent and retry; past the bound, release."""
        now = time.monotonic()
        attempt.trying_since = attempt.trying_since or now
        if now - attempt.trying_since >= STOP_BOUND_SECONDS:
            service_id = str((body.get("spec") or {}).get("serviceId", ""))
            self._abandon(body, service_id, f"{message} (tried for {STOP_BOUND_SECONDS:.0f} s)")
            return
        await self._blocked(body, reason, message, event=event)
        raise RetryLater(message, delay=RETRY_SECONDS)

    def _abandon(self, body: Mapping[str, Any], service_id: str, why: str) -> None:
        message = (
            f"cloud service {service_id} was NOT stopped: {why}. The resource is released "
            "anyway, so that its deletion (and its namespace's) completes; the cloud service "
            "may still be running and billed: stop it in the cloud's console"
        )
        logger.error(message, extra={"resource": resource_name(body), "service_id": service_id})
        self.runtime.metrics.stops_on_delete.labels("abandoned").inc()
        # Refused when the namespace itself is being deleted: then the log line and the
        # metric are what remains (docs/architecture.md, "Deletion path").
        self.runtime.kube.event(body, "Warning", ABANDONED_REASON, message)
        self.forget(str((body.get("metadata") or {}).get("uid")))

    def _released(self, uid: str, result: str) -> None:
        self.runtime.metrics.stops_on_delete.labels(result).inc()
        self.forget(uid)

    async def _blocked(
        self, body: Mapping[str, Any], reason: Reason | str, message: str, *, event: bool
    ) -> None:
        """Ready=False with why the stop waits, and (unless already posted) a Warning event."""
        current = dict(body.get("status") or {})
        previous = current.get("conditions") or []
        meta = body.get("metadata") or {}
        generation = int(meta.get("generation", 0))
        ready = st.condition(
            ConditionType.READY, False, reason, message,
            generation=generation, now=datetime.datetime.now(datetime.UTC), previous=previous,
        )  # fmt: skip
        others = [c for c in previous if c.get("type") != ConditionType.READY.value]
        try:
            await self.runtime.kube.patch_status(
                SERVICES_PLURAL, str(meta.get("namespace")), str(meta.get("name")),
                {"conditions": [ready, *others]},
            )  # fmt: skip
        except (KubeApiError, aiohttp.ClientError, TimeoutError) as err:
            # The status is only a report: the retry, and the bound, must not wait for it.
            logger.warning("status not written: %s", err, extra={"resource": resource_name(body)})
        if event:
            self.runtime.kube.event(body, "Warning", str(reason), message)
