"""The operator's moving parts: one observer per CloudAccount, one reconciler per service.

Neither knows about Kopf: `cloudinfer.main` drives them from daemons and hands in a
`KubeAccess` for the few Kubernetes calls they make (read a Secret or ConfigMap, patch a
status, post an event). See docs/architecture.md for the data flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from cloudinfer.api.cloudaccount import CloudAccountSpec
from cloudinfer.api.conditions import PAUSED_ANNOTATION, ConditionType, Reason
from cloudinfer.api.inferenceservice import JOURNAL_MAX_ENTRIES, InferenceServiceSpec
from cloudinfer.cloud.clock import SystemClock
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    CloudError,
    ConflictError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    QuotaError,
    ThrottledError,
    UnsupportedActionError,
)
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.instances import (
    InstanceNotFoundError,
    InstanceSelectionError,
    select_instance,
)
from cloudinfer.cloud.model import Change, ObservedService, Phase, ServiceField
from cloudinfer.cloud.provider import CloudProvider
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.accounts import (
    AccountConfig,
    AccountSetupError,
    account_config,
    new_budgets,
    new_provider,
)
from cloudinfer.reconcile.claims import (
    Claimant,
    ClaimRegistry,
    Identity,
    Unknown,
    claimant_from,
    cloud_identity,
    is_deleting,
)
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.planner import Plan, PlanInput, backoff_until, plan

logger = logging.getLogger("cloudinfer")

ACCOUNTS_PLURAL = "cloudaccounts"
SERVICES_PLURAL = "inferenceservices"
# After an error the observer waits at least this long, doubling up to the steady interval.
ERROR_BACKOFF_SECONDS = 2.0
ACTIVE_POLL_DUTY_CYCLE = 0.25
"""While converging, lists take at most this share of the time: an account of 1,000 services
is 10 pages, and listing them every second kept the event loop busy enough to delay writes."""
QUIET_START_SECONDS = 5.0
"""For this long after a reconciler starts, waiting for its CloudAccount's observer (to start,
or to finish its first list) is not written to status: at start-up every service waits for
it, and 1,000 status writes saying so would delay that very list (by ~8 s in bench/). A wait
that lasts longer is reported (`PendingObservation`)."""
# A service that has not been listed yet after this long is reported as not found.
Key = tuple[str, str]  # (namespace, name)


class KubeAccess(Protocol):
    """The Kubernetes calls the runtime makes; implemented in cloudinfer.main."""

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None: ...

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None: ...

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


def error_reason(error: BaseException) -> Reason:
    """The condition reason for a cloud or setup error (the Kopf-style error classes)."""
    if isinstance(error, AccountSetupError):
        return error.reason
    for cls, reason in (
        (ThrottledError, Reason.CLOUD_THROTTLED),
        (AuthError, Reason.AUTH_FAILED),  # includes ClockSkewError
        (NotFoundError, Reason.SERVICE_NOT_FOUND),
        (QuotaError, Reason.QUOTA_EXCEEDED),
        (UnsupportedActionError, Reason.UNSUPPORTED_BY_CLOUD),
        (BusyError, Reason.CONVERGING),
        (InvalidRequestError, Reason.CLOUD_REJECTED),
        (ConflictError, Reason.CLOUD_REJECTED),
    ):
        if isinstance(error, cls):
            return reason
    return Reason.CLOUD_UNREACHABLE


def error_message(error: BaseException) -> str:
    if isinstance(error, ClockSkewError):
        return f"clock skew: the cloud rejected the request time ({error})"
    return str(error)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Snapshot:
    """What the last batched observation of an account found."""

    services: dict[str, ObservedService] = field(default_factory=dict)
    observed_at: datetime.datetime | None = None
    error: BaseException | None = None
    config: AccountConfig | None = None
    provider: CloudProvider | None = None


class AccountObserver:
    """One background loop per CloudAccount: batched list calls, one snapshot, notifications."""

    def __init__(
        self,
        key: Key,
        kube: KubeAccess,
        metrics: Metrics,
        on_identity_change: Callable[[], None] | None = None,
    ) -> None:
        self.key = key
        self.kube = kube
        self.metrics = metrics
        self.snapshot = Snapshot()
        self._on_identity_change = on_identity_change
        self._reported_identity: Identity | Unknown | None = Unknown.PENDING
        self._subscribers: dict[str, set[asyncio.Event]] = {}
        self._wake = asyncio.Event()
        self._poll_now = False
        self._last_started = 0.0  # time.monotonic() when the last observation began
        self._active_delay = 0.0  # seconds between observations while a service is active
        self._active: set[str] = set()
        self._client: httpx.AsyncClient | None = None
        self._ca_file: Path | None = None
        self._client_ca: str | None = None
        self._clock = SystemClock()
        self._budgets_cloud: str | None = None
        self._provider: CloudProvider | None = None
        self._written: dict[str, Any] | None = None

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, service_id: str, waker: asyncio.Event) -> None:
        self._subscribers.setdefault(service_id, set()).add(waker)
        waker.set()

    def unsubscribe(self, service_id: str, waker: asyncio.Event) -> None:
        wakers = self._subscribers.get(service_id)
        if wakers is not None:
            wakers.discard(waker)
            if not wakers:
                del self._subscribers[service_id]

    def mark_active(self, service_id: str, active: bool) -> None:
        """A service with a pending change makes the observer poll fast: the next observation
        comes at most one active interval after the last one began."""
        if active:
            if service_id not in self._active:
                self._active.add(service_id)
                self._wake.set()
        else:
            self._active.discard(service_id)

    def _notify(self, service_ids: set[str] | None = None) -> None:
        targets = self._subscribers if service_ids is None else service_ids
        for service_id in list(targets):
            for waker in self._subscribers.get(service_id, ()):
                waker.set()

    @property
    def claim_identity(self) -> Identity | Unknown | None:
        """The cloud identity claims are keyed on (claims.py): the one of the last successful
        observation, kept through later errors so that a flaky list does not hand a cloud
        service to another claimant. PENDING before the first observation; None if the
        first observation failed (such an account claims nothing)."""
        if self.snapshot.config is not None:
            return cloud_identity(self.snapshot.config.account)
        return Unknown.PENDING if self.snapshot.error is None else None

    def _report_identity(self) -> None:
        identity = self.claim_identity
        if identity != self._reported_identity:
            self._reported_identity = identity
            if self._on_identity_change is not None:
                self._on_identity_change()

    # -- the loop -----------------------------------------------------------------------------

    async def _configure(
        self, name: str, namespace: str, spec: CloudAccountSpec
    ) -> tuple[AccountConfig, CloudProvider]:
        secret = await self.kube.read_secret_data(namespace, spec.credentials_secret_ref.name)
        ca_pem = None
        if spec.ca_bundle_ref is not None:
            ref = spec.ca_bundle_ref
            ca_pem = await self.kube.read_configmap_key(namespace, ref.name, ref.key)
        config = account_config(f"{namespace}/{name}", spec, secret, ca_pem)
        if self._client is None or ca_pem != self._client_ca:
            await self._close_client()
            ca_path = None
            if ca_pem:
                # httpx wants a file; the pod's /tmp is a writable emptyDir.
                handle, raw_path = tempfile.mkstemp(prefix="cloudinfer-ca-", suffix=".pem")
                with os.fdopen(handle, "w") as out:
                    out.write(ca_pem)
                ca_path = self._ca_file = Path(raw_path)
            self._client = new_async_client(ca_bundle=ca_path)
            self._client_ca = ca_pem
            self._provider = None
        if self._provider is None or self._budgets_cloud != spec.provider:
            budgets = new_budgets(config.account.cloud, self._clock)
            self._provider = new_provider(config.account.cloud, self._client, budgets, self._clock)
            self._budgets_cloud = spec.provider
            self._budgets = budgets
            self._budget_overrides: Mapping[str, Any] | None = None
        if config.budget_overrides != self._budget_overrides:
            self._budgets.configure(config.account.name, config.budget_overrides)
            self._budget_overrides = config.budget_overrides
        return config, self._provider

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._ca_file is not None:
            self._ca_file.unlink(missing_ok=True)
            self._ca_file = None

    async def observe_once(self, body: Mapping[str, Any]) -> float:
        """One observation round; returns the seconds to sleep before the next."""
        meta = body.get("metadata", {})
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        generation = int(meta.get("generation", 0))
        try:
            spec = CloudAccountSpec.model_validate(body.get("spec", {}))
        except ValidationError as err:
            await self._account_status(body, generation, False, Reason.INVALID_SPEC, _brief(err))
            return 60.0
        started = self._last_started = time.monotonic()
        # The list may start before one of our writes and end after it: the observation is
        # as old as its start, or the write would look observed and be repeated.
        listed_at = _now()
        try:
            config, provider = await self._configure(name, namespace, spec)
            try:
                listed = await provider.list_services(config.account)
            except ValidationError as invalid:  # a reply the parser let through, the model not
                raise MalformedResponseError(
                    "a listed service does not fit the model: " + _problems(invalid),
                    cloud=spec.provider,
                ) from invalid
        except (CloudError, AccountSetupError) as err:
            self.metrics.observe_errors.labels(spec.provider, error_reason(err)).inc()
            self.snapshot.error = err
            self._notify()
            self._report_identity()
            await self._account_status(
                body, generation, False, error_reason(err), error_message(err)
            )
            return min(float(spec.poll_interval_seconds), ERROR_BACKOFF_SECONDS * 4)
        self.metrics.observe_seconds.labels(spec.provider).observe(time.monotonic() - started)
        fresh = {service.service_id: service for service in listed}
        changed = {
            sid
            for sid in fresh.keys() | self.snapshot.services.keys()
            if fresh.get(sid) != self.snapshot.services.get(sid)
        }
        had_error = self.snapshot.error is not None
        self.snapshot = Snapshot(fresh, listed_at, None, config, provider)
        self._report_identity()
        self.metrics.snapshot_services.labels(f"{namespace}/{name}").set(len(fresh))
        # Waking everyone on recovery lets their conditions clear the error. Active services
        # wait for an observation newer than their write, changed or not: wake them too.
        self._notify(None if had_error else changed | self._active)
        self._active = {sid for sid in self._active if sid in fresh and sid in self._subscribers}
        transitioning = any(
            fresh[sid].phase is Phase.TRANSITIONING for sid in self._subscribers if sid in fresh
        )
        await self._account_status(
            body, generation, True, Reason.CREDENTIALS_VERIFIED,
            f"listed {len(fresh)} services", services_seen=len(fresh),
        )  # fmt: skip
        took = time.monotonic() - started
        self._active_delay = max(
            float(spec.active_poll_interval_seconds), took / ACTIVE_POLL_DUTY_CYCLE
        )
        if self._active or transitioning:
            return self._active_delay
        return float(spec.poll_interval_seconds)

    async def run(
        self,
        body: Mapping[str, Any],
        stopped: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        try:
            while not stopped():
                try:
                    delay = await self.observe_once(body)
                except Exception:
                    # Kubernetes itself failed (a Secret read or the status write during an
                    # apiserver restart), or a bug: retry soon. Letting it escape would make
                    # Kopf restart the daemon only after a minute, with no observation meanwhile.
                    logger.exception(
                        "account observation failed", extra={"resource": "/".join(self.key)}
                    )
                    delay = ERROR_BACKOFF_SECONDS
                await self._wait(delay)
                # Coalesce bursts of wake-ups (many services writing at once).
                await sleep(0.05)
        finally:
            await self._close_client()

    async def _wait(self, delay: float) -> None:
        """Sleep `delay` seconds; `wake()` ends it at once, a service becoming active ends it
        one active interval after the last observation began (at 20 writes a second, a new
        service becomes active every 50 ms: listing at each would list back to back)."""
        self._wake.clear()
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=left)
            if not self._wake.is_set():
                break
            self._wake.clear()
            if self._poll_now:
                break
            deadline = min(deadline, self._last_started + self._active_delay)
        self._poll_now = False

    def wake(self) -> None:
        """Observe now (the CloudAccount changed)."""
        self._poll_now = True
        self._wake.set()

    async def _account_status(
        self,
        body: Mapping[str, Any],
        generation: int,
        ready: bool,
        reason: Reason | str,
        message: str,
        *,
        services_seen: int | None = None,
    ) -> None:
        meta = body.get("metadata", {})
        current = dict(self._written if self._written is not None else body.get("status") or {})
        previous = current.get("conditions") or []
        new: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": [
                st.condition(
                    ConditionType.READY,
                    ready,
                    reason,
                    message,
                    generation=generation,
                    now=_now(),
                    previous=previous,
                )
            ],
        }
        if services_seen is not None:
            new["servicesSeen"] = services_seen
        elif "servicesSeen" in current:
            new["servicesSeen"] = current["servicesSeen"]
        patch = st.merge_patch(current, new)
        if patch is None:
            return
        old_reason = next((c.get("reason") for c in previous if c.get("type") == "Ready"), None)
        await self.kube.patch_status(
            ACCOUNTS_PLURAL, str(meta.get("namespace")), str(meta.get("name")), patch
        )
        self._written = new
        if old_reason != str(reason):
            self.kube.event(body, "Normal" if ready else "Warning", str(reason), message)


def _problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5])


def _brief(err: ValidationError) -> str:
    return "invalid spec: " + _problems(err)


class Runtime:
    """Shared state: the observers, keyed by CloudAccount, and the metrics."""

    def __init__(self, kube: KubeAccess, metrics: Metrics) -> None:
        self.kube = kube
        self.metrics = metrics
        self.observers: dict[Key, AccountObserver] = {}
        self._account_waiters: dict[Key, set[asyncio.Event]] = {}
        self.claims = ClaimRegistry()
        """Which InferenceService owns each cloud service (claims.py)."""
        self.accounts: set[Key] = set()
        """Every CloudAccount in the apiserver (fed from a Kopf index, like the claims): one
        whose observer has not started yet is pending, not absent, for the claim rule."""

    def observer(self, key: Key) -> AccountObserver:
        observer = self.observers.get(key)
        if observer is None:
            observer = self.observers[key] = AccountObserver(
                key, self.kube, self.metrics, on_identity_change=self.claims.wake_contested
            )
            for waker in self._account_waiters.get(key, ()):
                waker.set()
        return observer

    def drop_observer(self, key: Key) -> None:
        observer = self.observers.pop(key, None)
        if observer is not None:
            observer.snapshot = Snapshot()
            observer._notify()  # services learn their account is gone
            self.claims.wake_contested()  # and its claims are gone with it

    def account_seen(self, key: Key, exists: bool) -> None:
        """The CloudAccount `key` exists (or no longer does, or is being deleted)."""
        if exists and key not in self.accounts:
            self.accounts.add(key)
        elif not exists and key in self.accounts:
            self.accounts.discard(key)
            self.claims.wake_contested()

    def identity_of(self, key: Key) -> Identity | Unknown | None:
        """A CloudAccount's claim identity; None when there is no such account."""
        observer = self.observers.get(key)
        if observer is not None:
            return observer.claim_identity
        return Unknown.PENDING if key in self.accounts else None

    def wait_for_account(self, key: Key, waker: asyncio.Event) -> None:
        self._account_waiters.setdefault(key, set()).add(waker)

    def stop_waiting_for_account(self, key: Key, waker: asyncio.Event) -> None:
        self._account_waiters.get(key, set()).discard(waker)


@dataclass
class ServiceOutcome:
    wake_at: datetime.datetime | None
    active: bool


class ServiceReconciler:
    """Plans and acts for one InferenceService whenever its spec or observation changes."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any]) -> None:
        self.runtime = runtime
        self.body = body
        self.waker = asyncio.Event()
        self._started = _now()
        self._last_event_reason: str | None = None
        self._observer: AccountObserver | None = None
        self._service_id: str | None = None
        self._account_key: Key | None = None
        self._claim_key: Key | None = None
        self._claimed_by: str | None = None
        """The owner named in our ServiceClaimed condition, if another InferenceService owns
        the cloud service (logged once per change)."""
        self._written: dict[str, Any] | None = None
        """The status we last wrote: the watch may not have delivered it back yet."""
        self._last_failure: tuple[bool, Reason | str, str] | None = None
        self._unsaved: list[dict[str, Any]] = []
        """Journal entries of calls made whose status write failed (e.g. the apiserver was
        restarting): still the duplicate-write guard's evidence until a status write lands."""

    @property
    def _meta(self) -> Mapping[str, Any]:
        meta: Mapping[str, Any] = self.body.get("metadata", {})
        return meta

    def _attach(self, account_key: Key, service_id: str) -> AccountObserver | None:
        if (account_key, service_id) != (self._account_key, self._service_id):
            self.detach()
            self._account_key, self._service_id = account_key, service_id
            self.runtime.wait_for_account(account_key, self.waker)
        observer = self.runtime.observers.get(account_key)
        if observer is not self._observer:
            if self._observer is not None and self._service_id is not None:
                self._observer.unsubscribe(self._service_id, self.waker)
            self._observer = observer
            if observer is not None:
                observer.subscribe(service_id, self.waker)
        return observer

    def detach(self) -> None:
        if self._observer is not None and self._service_id is not None:
            self._observer.unsubscribe(self._service_id, self.waker)
            self._observer.mark_active(self._service_id, False)
        if self._account_key is not None:
            self.runtime.stop_waiting_for_account(self._account_key, self.waker)
        self._observer = None
        if self._claim_key is not None:
            self.runtime.claims.unwatch(self._claim_key, self.waker)
            self._claim_key = None

    async def reconcile(self) -> ServiceOutcome:  # noqa: PLR0911, PLR0912, PLR0915 - one pass, in order
        meta = self._meta
        namespace = str(meta.get("namespace"))
        generation = int(meta.get("generation", 0))
        current = dict(
            self._written if self._written is not None else self.body.get("status") or {}
        )
        previous = current.get("conditions") or []
        now = _now()
        try:
            spec = InferenceServiceSpec.model_validate(self.body.get("spec", {}))
        except ValidationError as err:
            await self._fail(current, Reason.INVALID_SPEC, _brief(err), generation, now)
            return ServiceOutcome(None, False)
        me = claimant_from(self.body)
        assert me is not None  # the spec parsed, so it names a service and an account
        if is_deleting(self.body):
            # Kopf is stopping this daemon: give the cloud service to the next claimant.
            self.runtime.claims.drop(me.key)
            return ServiceOutcome(None, False)
        self.runtime.claims.put(me)
        if self._claim_key is None:
            self._claim_key = me.key
            self.runtime.claims.watch(me.key, self.waker)
        account_key = (namespace, spec.account_ref.name)
        observer = self._attach(account_key, spec.service_id)
        quiet_until = self._started + datetime.timedelta(seconds=QUIET_START_SECONDS)
        if observer is None and account_key in self.runtime.accounts and now < quiet_until:
            return ServiceOutcome(quiet_until, False)  # its observer is starting: woken then
        if observer is None:
            await self._fail(
                current, Reason.ACCOUNT_NOT_READY,
                f"CloudAccount {spec.account_ref.name} not found in namespace {namespace}",
                generation, now,
            )  # fmt: skip
            return ServiceOutcome(None, False)
        snapshot = observer.snapshot
        if snapshot.error is not None:
            reason = error_reason(snapshot.error)
            if reason in (Reason.SECRET_NOT_FOUND, Reason.INVALID_SPEC):
                reason = Reason.ACCOUNT_NOT_READY
            message = f"CloudAccount {spec.account_ref.name}: {error_message(snapshot.error)}"
            await self._fail(current, reason, message, generation, now)
            return ServiceOutcome(None, False)
        if snapshot.observed_at is None or snapshot.config is None or snapshot.provider is None:
            if now < quiet_until:
                return ServiceOutcome(quiet_until, False)  # woken by the first observation
            await self._fail(
                current, Reason.PENDING_OBSERVATION,
                f"waiting for the first observation of CloudAccount {spec.account_ref.name}",
                generation, now,
            )  # fmt: skip
            return ServiceOutcome(None, False)
        observed = snapshot.services.get(spec.service_id)
        if observed is None:
            await self._fail(
                current, Reason.SERVICE_NOT_FOUND,
                f"the cloud has no service {spec.service_id} in account {spec.account_ref.name}",
                generation, now,
            )  # fmt: skip
            return ServiceOutcome(None, False)
        if not await self._owns_claim(me, spec, observed, current, generation, now):
            return ServiceOutcome(None, False)
        try:  # Qianfan: plan and scale the compute-unit instance the spec names
            observed = select_instance(
                observed,
                spec.baidu.instance_id if spec.baidu is not None else None,
                manages_replicas=spec.replicas is not None,
            )
        except InstanceSelectionError as err:
            missing = isinstance(err, InstanceNotFoundError)
            reason = Reason.INSTANCE_NOT_FOUND if missing else Reason.INVALID_SPEC
            await self._fail(current, reason, str(err), generation, now, observed=observed)
            return ServiceOutcome(None, False)

        annotations = meta.get("annotations") or {}
        paused = str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"
        journal = [*(current.get("journal") or []), *self._unsaved]
        inputs = PlanInput(
            spec=spec,
            observed=observed,
            observed_at=snapshot.observed_at,
            now=now,
            recent_writes=st.recent_writes(journal),
            paused=paused,
        )
        the_plan = plan(inputs)
        backing_off = any(backoff_until(inputs, target) for target in ServiceField)
        if the_plan.drift:
            for drift in the_plan.drift:
                self.runtime.metrics.drift.labels(observed.cloud.value, drift.field.value).inc()
        synced: tuple[bool, Reason | str, str] = (True, Reason.RECONCILED, "no cloud call failed")
        entries: list[dict[str, Any]] = []
        wrote = False
        for change in the_plan.changes:
            ok, entry, failure = await self._apply(snapshot, observed, change)
            entries.append(entry)
            wrote = wrote or ok
            if failure is not None:
                synced = self._last_failure = failure
                break
        if synced[0]:
            # While a refused write backs off, Synced keeps saying why (no flapping).
            if backing_off and self._last_failure is not None:
                synced = self._last_failure
            elif not backing_off:
                self._last_failure = None
        new = self._status(
            the_plan, observed, spec, generation, synced, previous, journal, entries, now, current
        )
        self._unsaved = [*self._unsaved, *entries][-JOURNAL_MAX_ENTRIES:]
        await self._write(current, new)
        self._unsaved = []
        # Fast polls only while something is in flight for this service.
        observer.mark_active(spec.service_id, wrote or the_plan.waiting)
        result = "error" if not synced[0] else ("requeue" if the_plan.changes else "success")
        self.runtime.metrics.reconciles.labels("inferenceservice", result).inc()
        return ServiceOutcome(the_plan.wake_at, wrote or the_plan.waiting)

    async def _owns_claim(  # noqa: PLR0917 - the reconcile's state so far
        self,
        me: Claimant,
        spec: InferenceServiceSpec,
        observed: ObservedService,
        current: Mapping[str, Any],
        generation: int,
        now: datetime.datetime,
    ) -> bool:
        """Whether this InferenceService may write to its cloud service (claims.py); if not,
        the status says which one does, or what the decision waits for."""
        verdict = self.runtime.claims.decide(me, self.runtime.identity_of)
        if verdict.owner != me:
            owner = verdict.owner.describe()
            if owner != self._claimed_by:
                logger.warning(
                    "cloud service claimed by another InferenceService: %s %s owned by %s",
                    self._name(), spec.service_id, owner,
                    extra={"resource": self._name(), "service_id": spec.service_id,
                           "owner": owner},
                )  # fmt: skip
                self._claimed_by = owner
            await self._fail(
                current, Reason.SERVICE_CLAIMED,
                f"cloud service {spec.service_id} is managed by InferenceService {owner}, the "
                f"oldest of the {len(verdict.rivals) + 1} that name it on this cloud account; "
                "this one makes no cloud call until that one is deleted or names another service",
                generation, now, observed=observed,
            )  # fmt: skip
            return False
        if verdict.waiting_for:
            await self._fail(
                current, Reason.PENDING_OBSERVATION,
                f"waiting for the first observation of {verdict.waiting_for} other "
                f"CloudAccount(s) naming service {spec.service_id}: an older InferenceService "
                "may own it",
                generation, now,
            )  # fmt: skip
            return False
        if self._claimed_by is not None:
            logger.info(
                "cloud service claim taken over: %s now manages %s (was %s)",
                self._name(), spec.service_id, self._claimed_by,
                extra={"resource": self._name(), "service_id": spec.service_id},
            )  # fmt: skip
            self._claimed_by = None
        return True

    async def _apply(
        self, snapshot: Snapshot, observed: ObservedService, change: Change
    ) -> tuple[bool, dict[str, Any], tuple[bool, Reason | str, str] | None]:
        assert snapshot.provider is not None and snapshot.config is not None
        cloud = observed.cloud.value
        now = _now()
        described = f"{change.kind}: {change.reason}"
        try:
            result = await snapshot.provider.apply(
                snapshot.config.account, change, observed=observed
            )
        except CloudError as err:
            now = _now()
            reason = error_reason(err)
            self.runtime.metrics.cloud_calls.labels(cloud, err.action or change.kind, "error").inc()
            if isinstance(err, ThrottledError):
                self.runtime.metrics.throttles.labels(cloud).inc()
            logger.warning(
                "cloud write failed: %s %s: %s", self._name(), described, error_message(err),
                extra={"resource": self._name(), "cloud": cloud, "action": err.action,
                       "request_id": err.request_id, "reason": str(reason)},
            )  # fmt: skip
            if reason != self._last_event_reason:
                self.runtime.kube.event(
                    self.body, "Warning", str(reason), f"{described} failed: {error_message(err)}"
                )
                self._last_event_reason = str(reason)
            entry = st.journal_entry(
                when=now, action=err.action or change.kind, change=described,
                request_id=err.request_id, succeeded=False,
            )  # fmt: skip
            return False, entry, (False, reason, f"{described}: {error_message(err)}")
        # The journal time is when the call returned, not when it was queued: a list that
        # started before this instant may predate the write (duplicate-write guard).
        now = _now()
        self.runtime.metrics.cloud_calls.labels(cloud, result.call, "success").inc()
        note = f" ({result.note})" if result.note else ""
        logger.info(
            "cloud write: %s %s %s (request %s)", self._name(), result.call, described,
            result.request_id,
            extra={"resource": self._name(), "cloud": cloud, "action": result.call,
                   "request_id": result.request_id, "change": described},
        )  # fmt: skip
        self.runtime.kube.event(
            self.body, "Normal", "CloudWrite",
            f"{result.call} {described}{note} (request {result.request_id or 'n/a'})",
        )  # fmt: skip
        self._last_event_reason = None
        entry = st.journal_entry(
            when=now, action=result.call, change=described + note,
            request_id=result.request_id, succeeded=True,
        )  # fmt: skip
        return True, entry, None

    def _name(self) -> str:
        return f"{self._meta.get('namespace')}/{self._meta.get('name')}"

    def _status(  # noqa: PLR0917 - assembles every piece of the status
        self,
        the_plan: Plan,
        observed: ObservedService,
        spec: InferenceServiceSpec,
        generation: int,
        synced: tuple[bool, Reason | str, str],
        previous: list[Any],
        journal: list[dict[str, Any]],
        entries: list[dict[str, Any]],
        now: datetime.datetime,
        current: Mapping[str, Any],
    ) -> dict[str, Any]:
        new: dict[str, Any] = {
            "observedGeneration": generation,
            "provider": observed.cloud.value,
            "conditions": st.service_conditions(
                the_plan, synced=synced, generation=generation, now=now, previous=previous
            ),
            "observed": st.observed_block(observed),
            "capabilities": st.capabilities(observed.capabilities),
        }
        transition = st.next_transition(the_plan.next_transition)
        if transition is not None:
            new["nextTransition"] = transition
        merged = st.append_journal(journal, entries)
        if merged:
            new["journal"] = merged
        return new

    async def _fail(
        self,
        current: Mapping[str, Any],
        reason: Reason | str,
        message: str,
        generation: int,
        now: datetime.datetime,
        *,
        observed: ObservedService | None = None,
    ) -> None:
        """Ready and Synced False with `reason`; the rest of the status is kept. With
        `observed` (a reconciler that sees the cloud but may not act on it), the observed
        block is refreshed and the next transition dropped: this one will not make it."""
        previous = current.get("conditions") or []
        new = {
            key: value
            for key, value in current.items()
            if key in ("observed", "capabilities", "journal", "provider", "nextTransition")
        }
        if observed is not None:
            new["provider"] = observed.cloud.value
            new["observed"] = st.observed_block(observed)
            new["capabilities"] = st.capabilities(observed.capabilities)
            new.pop("nextTransition", None)
        new["observedGeneration"] = generation
        new["conditions"] = st.failure_conditions(
            reason, message, generation=generation, now=now, previous=previous
        )
        if str(reason) != self._last_event_reason:
            self.runtime.kube.event(self.body, "Warning", str(reason), message)
            self._last_event_reason = str(reason)
        await self._write(current, new)
        self.runtime.metrics.reconciles.labels("inferenceservice", "error").inc()

    async def _write(self, current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        patch = st.merge_patch(dict(current), dict(new))
        if patch is None:
            return
        meta = self._meta
        await self.runtime.kube.patch_status(
            SERVICES_PLURAL, str(meta.get("namespace")), str(meta.get("name")), patch
        )
        self._written = dict(new)
