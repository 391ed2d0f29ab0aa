"""One reconciler per InferenceService: spec -> plan -> execute -> status.

It finds its observation (the account's snapshot), checks that it owns the cloud service
(claims.py), asks the planner what to change, sends the changes through the write executor,
and writes the status only if it differs from what is stored.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from pydantic import ValidationError

from cloudinfer.api.conditions import PAUSED_ANNOTATION, WAKE_UNTIL_ANNOTATION, Reason
from cloudinfer.api.inferenceservice import JOURNAL_MAX_ENTRIES, InferenceServiceSpec
from cloudinfer.cloud.instances import (
    InstanceNotFoundError,
    InstanceSelectionError,
    select_instance,
)
from cloudinfer.cloud.model import ObservedService, Phase
from cloudinfer.reconcile import ledger
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.claims import Claimant, claimant_from, is_deleting
from cloudinfer.reconcile.executor import Warnings, resource_name
from cloudinfer.reconcile.kube_access import SERVICES_PLURAL, Key
from cloudinfer.reconcile.ledger import LedgerEntry
from cloudinfer.reconcile.metrics import ServiceState
from cloudinfer.reconcile.observer import AccountObserver, Snapshot
from cloudinfer.reconcile.outcomes import (
    error_message,
    error_reason,
    invalid_spec_message,
    outcome_named,
)
from cloudinfer.reconcile.planner import Plan, PlanInput, plan
from cloudinfer.reconcile.runtime import Runtime

logger = logging.getLogger("cloudinfer")

QUIET_START_SECONDS = 5.0
"""For this long after a reconciler starts, waiting for its CloudAccount's observer (to start,
or to finish its first list) is not written to status: at start-up every service waits for
it, and 1,000 status writes saying so would delay that very list (by ~8 s in bench/). A wait
that lasts longer is reported (`PendingObservation`)."""
Synced = tuple[bool, Reason | str, str]
"""The Synced condition: (status, reason, message)."""
NO_CALL_FAILED: Synced = (True, Reason.RECONCILED, "no cloud call failed")


WAKE_IGNORED_REASON = "WakeOverrideIgnored"
"""The event posted once when cloudinfer.dev/wake-until is expired or malformed."""


def _annotation(annotations: Mapping[str, Any], key: str) -> str | None:
    value = annotations.get(key)
    return None if value is None else str(value)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _named_instance(spec: InferenceServiceSpec, observed: ObservedService) -> ObservedService:
    """The observation narrowed to the instance `spec` names (Qianfan; a no-op elsewhere)."""
    return select_instance(
        observed,
        spec.baidu.instance_id if spec.baidu is not None else None,
        manages_replicas=spec.replicas is not None,
    )


@dataclass
class ServiceOutcome:
    wake_at: datetime.datetime | None
    active: bool


@dataclass(frozen=True)
class _Pass:
    """What one reconcile pass works from."""

    spec: InferenceServiceSpec
    generation: int
    now: datetime.datetime
    current: dict[str, Any]
    """The status as last stored (or last written by us)."""


@dataclass(frozen=True)
class _Scene:
    """The observation a plan is made from."""

    observer: AccountObserver
    snapshot: Snapshot
    observed: ObservedService


class ServiceReconciler:
    """Plans and acts for one InferenceService whenever its spec or observation changes."""

    def __init__(self, runtime: Runtime, body: Mapping[str, Any]) -> None:
        self.runtime = runtime
        self.body = body
        self.waker = asyncio.Event()
        self._started = _now()
        self._warnings = Warnings(runtime.kube, lambda: self.body)
        self._observer: AccountObserver | None = None
        self._service_id: str | None = None
        self._account_key: Key | None = None
        self._claim_key: Key | None = None
        self._claimed_by: str | None = None
        """The owner named in our ServiceClaimed condition, if another InferenceService owns
        the cloud service (logged once per change)."""
        self._written: dict[str, Any] | None = None
        """The status we last wrote: the watch may not have delivered it back yet."""
        self.status_writes = 0
        """Status patches sent: a pass that wrote one is followed by another pass, which sees
        what it wrote (e.g. a refusal it recorded is then reported as held)."""
        self._unsaved: list[LedgerEntry] = []
        """Journal entries of calls made whose status write failed (e.g. the apiserver was
        restarting): still the duplicate-write guard's evidence until a status write lands."""

    def saw(self, body: Mapping[str, Any]) -> None:
        """The watch's latest body. Once it carries the status we wrote, our own copy of that
        status is dropped: one copy per service is enough."""
        self.body = body
        if self._written is not None and body.get("status") == self._written:
            self._written = None

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
        self.runtime.metrics.forget_service(self._name())
        if self._observer is not None and self._service_id is not None:
            self._observer.unsubscribe(self._service_id, self.waker)
            self._observer.mark_active(self._service_id, False)
        if self._account_key is not None:
            self.runtime.stop_waiting_for_account(self._account_key, self.waker)
        self._observer = None
        if self._claim_key is not None:
            self.runtime.claims.unwatch(self._claim_key, self.waker)
            self._claim_key = None

    # -- one pass: spec -> observation -> plan -> execute -> status ----------------------------

    async def reconcile(self) -> ServiceOutcome:
        generation = int(self._meta.get("generation", 0))
        current = dict(
            self._written if self._written is not None else self.body.get("status") or {}
        )
        now = _now()
        try:
            spec = InferenceServiceSpec.model_validate(self.body.get("spec", {}))
        except ValidationError as err:
            await self._fail(
                current, Reason.INVALID_SPEC, invalid_spec_message(err), generation, now
            )
            return ServiceOutcome(None, False)
        me = claimant_from(self.body)
        assert me is not None  # the spec parsed, so it names a service and an account
        if is_deleting(self.body):
            # Its task is stopping: give the cloud service to the next claimant.
            self.runtime.claims.drop(me.key)
            return ServiceOutcome(None, False)
        self.runtime.claims.put(me)
        if self._claim_key is None:
            self._claim_key = me.key
            self.runtime.claims.watch(me.key, self.waker)
        this = _Pass(spec, generation, now, current)
        scene = await self._scene(this)
        if isinstance(scene, ServiceOutcome):
            return scene
        if not await self._owns_claim(me, this, scene.observed):
            return ServiceOutcome(None, False)
        instance = await self._instance(this, scene.observed)
        if instance is None:
            return ServiceOutcome(None, False)
        return await self._act(this, replace(scene, observed=instance))

    async def _instance(self, this: _Pass, observed: ObservedService) -> ObservedService | None:
        """Qianfan: the observation narrowed to the compute-unit instance the spec names (a
        no-op on the other clouds); None, with the reason written, if there is no such one."""
        try:
            return _named_instance(this.spec, observed)
        except InstanceSelectionError as err:
            missing = isinstance(err, InstanceNotFoundError)
            reason = Reason.INSTANCE_NOT_FOUND if missing else Reason.INVALID_SPEC
            await self._fail_pass(this, reason, str(err), observed=observed)
            return None

    async def _scene(self, this: _Pass) -> _Scene | ServiceOutcome:
        """The account's observation of this service, or the outcome of not having one."""
        found = await self._snapshot(this)
        if isinstance(found, ServiceOutcome):
            return found
        observer, snapshot = found
        service_id = this.spec.service_id
        observed = snapshot.services.get(service_id)
        if observed is None and not snapshot.complete:
            return ServiceOutcome(None, False)  # woken when the first observation reaches it
        if observed is None:
            message = (
                f"the cloud has no service {service_id} in account {this.spec.account_ref.name}"
            )
            await self._fail_pass(this, Reason.SERVICE_NOT_FOUND, message)
            return ServiceOutcome(None, False)
        return _Scene(observer, snapshot, observed)

    async def _snapshot(self, this: _Pass) -> tuple[AccountObserver, Snapshot] | ServiceOutcome:
        """The account's observer and its last successful observation, if there is one."""
        account = this.spec.account_ref.name
        namespace = str(self._meta.get("namespace"))
        account_key = (namespace, account)
        observer = self._attach(account_key, this.spec.service_id)
        quiet_until = self._started + datetime.timedelta(seconds=QUIET_START_SECONDS)
        in_quiet_start = this.now < quiet_until
        if observer is None and account_key in self.runtime.accounts and in_quiet_start:
            return ServiceOutcome(quiet_until, False)  # its observer is starting: woken then
        if observer is None:
            message = f"CloudAccount {account} not found in namespace {namespace}"
            await self._fail_pass(this, Reason.ACCOUNT_NOT_READY, message)
            return ServiceOutcome(None, False)
        snapshot = observer.snapshot
        if snapshot.error is not None:
            reason = error_reason(snapshot.error)
            if reason in (
                Reason.SECRET_NOT_FOUND,
                Reason.INVALID_SPEC,
                Reason.ENDPOINT_NOT_ALLOWED,
            ):
                reason = Reason.ACCOUNT_NOT_READY
            message = f"CloudAccount {account}: {error_message(snapshot.error)}"
            await self._fail_pass(this, reason, message)
            return ServiceOutcome(None, False)
        if snapshot.observed_at is None or snapshot.config is None or snapshot.provider is None:
            if in_quiet_start:
                return ServiceOutcome(quiet_until, False)  # woken by the first observation
            message = f"waiting for the first observation of CloudAccount {account}"
            await self._fail_pass(this, Reason.PENDING_OBSERVATION, message)
            return ServiceOutcome(None, False)
        return observer, snapshot

    async def _act(self, this: _Pass, scene: _Scene) -> ServiceOutcome:
        spec, observed, snapshot = this.spec, scene.observed, scene.snapshot
        assert snapshot.observed_at is not None
        journal = (*ledger.read(this.current.get("journal") or []), *self._unsaved)
        the_plan = plan(self._plan_input(this, observed, snapshot, journal))
        for drift in the_plan.drift:
            self.runtime.metrics.drift.labels(observed.cloud.value, drift.field.value).inc()
        synced, entries = await self._execute(the_plan, scene, journal)
        wrote = any(entry.succeeded for entry in entries)
        new = self._status(this, the_plan, observed, synced, journal, entries)
        self._report_wake(this.current, new, the_plan)
        self._unsaved = [*self._unsaved, *entries][-JOURNAL_MAX_ENTRIES:]
        # Fast polls only while something is in flight for this service on the cloud; said
        # before the status write, which may queue behind thousands of others.
        scene.observer.mark_active(spec.service_id, wrote or the_plan.waiting)
        # A pass whose calls all went through may store a newer observation's status instead.
        rebuild = partial(self._rebuilt, this, scene, the_plan, journal, entries)
        new = await self._write(this.current, new, rebuild if synced[0] else None) or new
        self._unsaved = []
        result = "error" if not synced[0] else ("requeue" if the_plan.changes else "success")
        self.runtime.metrics.reconciles.labels("inferenceservice", result).inc()
        reason = synced[1] if not synced[0] else the_plan.reason
        self.runtime.metrics.reconcile_reasons.labels(result, str(reason)).inc()
        held = [
            e.error_class
            for e in (*entries, the_plan.failed_write)
            if e is not None and not e.succeeded and e.retry_at is None and e.error_class
        ]
        self._report_state(new, observed, outcome_named(held[0]).reason if held else None)
        return ServiceOutcome(the_plan.wake_at, wrote or the_plan.waiting)

    def _plan_input(
        self,
        this: _Pass,
        observed: ObservedService,
        snapshot: Snapshot,
        journal: tuple[LedgerEntry, ...],
    ) -> PlanInput:
        assert snapshot.observed_at is not None
        annotations = self._meta.get("annotations") or {}
        return PlanInput(
            spec=this.spec,
            observed=observed,
            observed_at=snapshot.observed_at,
            now=this.now,
            recent_writes=journal,
            paused=str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true",
            generation=this.generation,
            account=snapshot.account,
            wake_until=_annotation(annotations, WAKE_UNTIL_ANNOTATION),
        )

    def _rebuilt(
        self,
        this: _Pass,
        scene: _Scene,
        the_plan: Plan,
        journal: tuple[LedgerEntry, ...],
        entries: list[LedgerEntry],
    ) -> dict[str, Any] | None:
        """The status this pass would write from the account's latest observation, if one
        arrived while its status waited for its turn and it asks for no cloud call; None
        otherwise (the next pass acts on it). Under load a status waits through the whole
        transition it reports: it then says the service is done, one write instead of two."""
        latest = scene.observer.snapshot
        if latest is scene.snapshot or latest.error is not None or latest.observed_at is None:
            return None
        found = latest.services.get(this.spec.service_id)
        if found is None:
            return None
        try:
            observed = _named_instance(this.spec, found)
        except InstanceSelectionError:
            return None
        later = replace(this, now=_now())
        again = plan(self._plan_input(later, observed, latest, (*journal, *entries)))
        if again.changes or again.failed_write is not None:
            return None
        new = self._status(later, again, observed, NO_CALL_FAILED, journal, entries)
        if again.wake != the_plan.wake:
            self._report_wake(this.current, new, again)
        scene.observer.mark_active(this.spec.service_id, again.waiting)
        return new

    async def _execute(
        self, the_plan: Plan, scene: _Scene, journal: tuple[LedgerEntry, ...]
    ) -> tuple[Synced, list[LedgerEntry]]:
        """Send the planned changes in order, stopping at the first refusal; returns the
        Synced condition and the new ledger entries."""
        entries: list[LedgerEntry] = []
        for change in the_plan.changes:
            outcome = await self.runtime.executor.execute(
                self.body, scene.snapshot, scene.observed, change,
                refusals_in_a_row=max(
                    ledger.refusals_in_a_row(journal, written) for written in change.fields
                ),
                warnings=self._warnings,
            )  # fmt: skip
            entries.append(outcome.entry)
            if not outcome.ok:
                return (False, outcome.reason, outcome.message), entries
        # A refusal that still holds or backs off keeps Synced saying why, restart or not.
        refused = the_plan.failed_write
        if refused is not None:
            reason = outcome_named(refused.error_class).reason
            return (False, reason, f"{refused.change}: {refused.error}"), entries
        return NO_CALL_FAILED, entries

    async def _owns_claim(self, me: Claimant, this: _Pass, observed: ObservedService) -> bool:
        """Whether this InferenceService may write to its cloud service (claims.py); if not,
        the status says which one does, or what the decision waits for."""
        service_id = this.spec.service_id
        verdict = self.runtime.claims.decide(me, self.runtime.identity_of)
        if verdict.owner != me:
            owner = verdict.owner.describe()
            if owner != self._claimed_by:
                logger.warning(
                    "cloud service claimed by another InferenceService: %s %s owned by %s",
                    self._name(), service_id, owner,
                    extra={"resource": self._name(), "service_id": service_id, "owner": owner},
                )  # fmt: skip
                self._claimed_by = owner
            await self._fail_pass(
                this, Reason.SERVICE_CLAIMED,
                f"cloud service {service_id} is managed by InferenceService {owner}, the "
                f"oldest of the {len(verdict.rivals) + 1} that name it on this cloud account; "
                "this one makes no cloud call until that one is deleted or names another service",
                observed=observed,
            )  # fmt: skip
            return False
        if verdict.waiting_for:
            await self._fail_pass(
                this, Reason.PENDING_OBSERVATION,
                f"waiting for the first observation of {verdict.waiting_for} other "
                f"CloudAccount(s) naming service {service_id}: an older InferenceService "
                "may own it",
            )  # fmt: skip
            return False
        if self._claimed_by is not None:
            logger.info(
                "cloud service claim taken over: %s now manages %s (was %s)",
                self._name(), service_id, self._claimed_by,
                extra={"resource": self._name(), "service_id": service_id},
            )  # fmt: skip
            self._claimed_by = None
        return True

    def _name(self) -> str:
        return resource_name(self.body)

    # -- status ---------------------------------------------------------------------------------

    def _status(  # noqa: PLR0917 - assembles every piece of the status
        self,
        this: _Pass,
        the_plan: Plan,
        observed: ObservedService,
        synced: Synced,
        journal: tuple[LedgerEntry, ...],
        entries: list[LedgerEntry],
    ) -> dict[str, Any]:
        previous = this.current.get("conditions") or []
        new: dict[str, Any] = {
            "observedGeneration": this.generation,
            "provider": observed.cloud.value,
            "conditions": st.service_conditions(
                the_plan,
                synced=synced,
                generation=this.generation,
                now=this.now,
                previous=previous,
            ),
            "observed": st.observed_block(observed),
            "capabilities": st.capabilities(observed.capabilities),
        }
        transition = st.next_transition(the_plan.next_transition)
        if transition is not None:
            new["nextTransition"] = transition
        upcoming = [st.next_transition(t) for t in the_plan.transitions]
        if upcoming:
            new["nextTransitions"] = upcoming
        wake = st.wake_override(the_plan.wake)
        if wake is not None:
            new["wakeOverride"] = wake
        merged = ledger.bounded([*journal, *entries])
        if merged:
            new["journal"] = [ledger.to_status(entry) for entry in merged]
        return new

    def _report_wake(
        self, current: Mapping[str, Any], new: Mapping[str, Any], the_plan: Plan
    ) -> None:
        """One event when a wake override is found expired or malformed: the stored status
        remembers it, so a restart or another pass posts nothing more."""
        wake = the_plan.wake
        if (
            wake is None
            or wake.problem is None
            or current.get("wakeOverride") == new.get("wakeOverride")
        ):
            return
        self.runtime.kube.event(self.body, "Warning", WAKE_IGNORED_REASON, wake.problem)

    async def _fail_pass(
        self,
        this: _Pass,
        reason: Reason | str,
        message: str,
        *,
        observed: ObservedService | None = None,
    ) -> None:
        await self._fail(
            this.current, reason, message, this.generation, this.now, observed=observed
        )

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
            if key
            in (
                "observed",
                "capabilities",
                "journal",
                "provider",
                "nextTransition",
                "nextTransitions",
                "wakeOverride",
            )
        }
        if observed is not None:
            new["provider"] = observed.cloud.value
            new["observed"] = st.observed_block(observed)
            new["capabilities"] = st.capabilities(observed.capabilities)
            new.pop("nextTransition", None)
            new.pop("nextTransitions", None)
        new["observedGeneration"] = generation
        new["conditions"] = st.failure_conditions(
            reason, message, generation=generation, now=now, previous=previous
        )
        self._warnings.post(reason, message)
        await self._write(current, new)
        self.runtime.metrics.reconciles.labels("inferenceservice", "error").inc()
        self.runtime.metrics.reconcile_reasons.labels("error", str(reason)).inc()
        self._report_state(new, observed, None)

    def _report_state(
        self, new: Mapping[str, Any], observed: ObservedService | None, held: Reason | None
    ) -> None:
        """The service's phase, Ready and held write, for the gauges (metrics.py)."""
        ready: Mapping[str, Any] = next(
            (c for c in new["conditions"] if c.get("type") == "Ready"), {}
        )
        self.runtime.metrics.service_state(
            self._name(),
            ServiceState(
                cloud=observed.cloud.value if observed else str(new.get("provider", "unknown")),
                phase=(observed.phase if observed else Phase.UNKNOWN).value,
                ready=ready.get("status") == "True",
                reason=str(ready.get("reason", "")),
                held=str(held) if held is not None else None,
            ),
        )

    async def _write(
        self,
        current: Mapping[str, Any],
        new: dict[str, Any],
        rebuild: Callable[[], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any] | None:
        """Store `new` if it differs from `current`, when its turn comes
        (`Runtime.status_turns`); `rebuild` may then give a newer one to store instead.
        Returns the status stored, or None."""
        patch = st.merge_patch(dict(current), new)
        if patch is None:
            return None
        async with self.runtime.status_turns:
            newer = rebuild() if rebuild is not None else None
            if newer is not None:
                new, patch = newer, st.merge_patch(dict(current), newer)
                if patch is None:
                    return None
            meta = self._meta
            await self.runtime.kube.patch_status(
                SERVICES_PLURAL, str(meta.get("namespace")), str(meta.get("name")), patch
            )
        self._written = dict(new)
        self.status_writes += 1
        return new
