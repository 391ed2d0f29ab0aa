"""Kopf glue: one daemon per CloudAccount (the observer), one per InferenceService (the
reconciler, idle until woken), event handlers that wake them, and the Stop-on-delete finalizer.

No daemon polls the cloud per service: observation is batched per account.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

import kopf

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.api.conditions import FINALIZER, ConditionType, Reason
from cloudinfer.cloud.errors import CloudError
from cloudinfer.cloud.model import Phase, Stop
from cloudinfer.main.events import EventPoster
from cloudinfer.main.settings import Settings
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.claims import claimant_from, is_deleting
from cloudinfer.reconcile.kube_access import SERVICES_PLURAL
from cloudinfer.reconcile.outcomes import error_message, error_reason
from cloudinfer.reconcile.reconciler import ServiceReconciler
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

# Longest idle wait of a service reconciler; observations and spec changes wake it sooner.
MAX_IDLE_SECONDS = 300.0
# After an unexpected exception, retry the reconcile after this long.
CRASH_BACKOFF_SECONDS = 10.0
DELETE_RETRY_SECONDS = 5.0
EVENT_FLUSH_SECONDS = 5.0


class State:
    """Process-wide state set up at startup (Kopf handlers are module-level functions)."""

    settings: Settings = Settings.model_construct()  # until main() parses the real ones
    runtime: Runtime | None = None
    events: EventPoster | None = None
    reconcilers: dict[tuple[str, str], ServiceReconciler] = {}  # noqa: RUF012


def runtime() -> Runtime:
    if State.runtime is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return State.runtime


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
    key = (namespace, name)
    observer = rt.observer(key)
    try:
        await observer.run(body, stopped=lambda: bool(stopped), sleep=asyncio.sleep)
    finally:
        rt.drop_observer(key)


@kopf.index(GROUP, VERSION, "cloudaccounts")
async def known_accounts(*, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
    """Feeds Runtime.accounts before any daemon starts (see service_claims)."""
    rt = State.runtime
    if rt is not None:
        rt.account_seen((namespace or "", name), not is_deleting(body))


@kopf.on.event(GROUP, VERSION, "cloudaccounts")
async def account_changed(*, namespace: str | None, name: str, type: str, **_: Any) -> None:
    rt = State.runtime
    if rt is not None and type == "DELETED":
        rt.account_seen((namespace or "", name), False)
    if rt is not None and type in ("MODIFIED", "ADDED"):
        observer = rt.observers.get((namespace or "", name))
        if observer is not None:
            observer.wake()


# -- InferenceService -----------------------------------------------------------------------


def _seconds_until(when: datetime.datetime | None) -> float:
    if when is None:
        return MAX_IDLE_SECONDS
    delta = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(0.5, min(MAX_IDLE_SECONDS, delta + 0.5))


@kopf.index(GROUP, VERSION, "inferenceservices")
async def service_claims(*, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
    """Feeds the claim registry (reconcile/claims.py) and wakes the reconciler; indexes
    nothing itself.

    Kopf runs indexers for every object of the initial listing before it starts any daemon,
    so the oldest claimant of a cloud service is known whatever order the daemons start in.
    Kopf also runs them on every later event, lighter than an event handler, which would log
    each call. Async, so it runs on the event loop and not in Kopf's thread pool.
    """
    rt = State.runtime
    if rt is not None:
        rt.claims.update(body)
    reconciler = State.reconcilers.get((namespace or "", name))
    if reconciler is not None:
        reconciler.waker.set()


@kopf.daemon(GROUP, VERSION, "inferenceservices", cancellation_timeout=10.0)
async def service_reconciler(
    *, body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    namespace = namespace or ""
    rt = runtime()
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
                logger.warning(
                    "reconcile failed: %s", err, extra={"resource": f"{namespace}/{name}"}
                )
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


def _deleted(*, type: str, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event(GROUP, VERSION, "inferenceservices", when=_deleted)
async def service_deleted(*, namespace: str | None, name: str, **_: Any) -> None:
    """Gone without our finalizer (removed by hand): the next claimant takes over now."""
    if State.runtime is not None:
        State.runtime.claims.drop((namespace or "", name))


def _stop_on_delete(*, spec: kopf.Spec, **_: Any) -> bool:
    policy = spec.get("policy") or {}
    return bool(policy.get("onDelete") == "Stop")


@kopf.on.delete(GROUP, VERSION, "inferenceservices", when=_stop_on_delete)
async def stop_before_release(
    *, body: kopf.Body, spec: kopf.Spec, namespace: str | None, **_: Any
) -> None:
    """policy.onDelete=Stop: stop the cloud service, then let the resource go."""
    rt = runtime()
    namespace = namespace or ""
    account = (spec.get("accountRef") or {}).get("name", "")
    service_id = str(spec.get("serviceId", ""))
    observer = rt.observers.get((namespace, account))
    snapshot = observer.snapshot if observer else None
    if observer is None or snapshot is None or snapshot.provider is None or snapshot.config is None:
        await _deletion_blocked(
            rt, body, Reason.ACCOUNT_NOT_READY,
            f"cannot stop {service_id} before release: CloudAccount {account} is not ready",
        )  # fmt: skip
        raise kopf.TemporaryError("account not ready", delay=DELETE_RETRY_SECONDS * 2)
    observed = snapshot.services.get(service_id)
    if observed is None or observed.phase is Phase.STOPPED:
        return  # gone or already stopped: release
    me = claimant_from(body)
    rivals = rt.claims.decide(me, rt.identity_of).rivals if me is not None else ()
    if rivals:
        # Another InferenceService still names this cloud service and takes it over:
        # stopping it would fight that one (docs/security.md, "Claims").
        message = (
            f"{service_id} not stopped before release: InferenceService "
            f"{rivals[0].describe()} also names it and now manages it"
        )
        logger.info(
            message, extra={"resource": f"{namespace}/{body.get('metadata', {}).get('name')}"}
        )
        rt.kube.event(body, "Normal", "StopSkipped", message)
        return
    if observed.phase is Phase.TRANSITIONING:
        observer.mark_active(service_id, True)
        raise kopf.TemporaryError("waiting for the cloud to settle", delay=DELETE_RETRY_SECONDS)
    try:
        result = await snapshot.provider.apply(
            snapshot.config.account,
            Stop(service_id=service_id, reason="onDelete: Stop"),
            observed=observed,
        )
    except CloudError as err:
        await _deletion_blocked(
            rt, body, error_reason(err),
            f"stopping {service_id} before release failed: {error_message(err)}",
        )  # fmt: skip
        raise kopf.TemporaryError(str(err), delay=DELETE_RETRY_SECONDS * 2) from err
    rt.kube.event(
        body, "Normal", "CloudWrite",
        f"{result.call} stop: onDelete: Stop (request {result.request_id or 'n/a'})",
    )  # fmt: skip
    observer.mark_active(service_id, True)
    raise kopf.TemporaryError("stop sent; waiting for the cloud", delay=DELETE_RETRY_SECONDS)


async def _deletion_blocked(
    rt: Runtime, body: kopf.Body, reason: Reason | str, message: str
) -> None:
    current = dict(body.get("status") or {})
    previous = current.get("conditions") or []
    generation = int(body.get("metadata", {}).get("generation", 0))
    ready = st.condition(
        ConditionType.READY, False, reason, message,
        generation=generation, now=datetime.datetime.now(datetime.UTC), previous=previous,
    )  # fmt: skip
    others = [c for c in previous if c.get("type") != ConditionType.READY.value]
    meta = body.get("metadata", {})
    await rt.kube.patch_status(
        SERVICES_PLURAL, str(meta.get("namespace")), str(meta.get("name")),
        {"conditions": [ready, *others]},
    )  # fmt: skip
    rt.kube.event(body, "Warning", str(reason), message)
