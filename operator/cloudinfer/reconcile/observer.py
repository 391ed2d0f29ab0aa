"""One observer per CloudAccount: batched list calls into one snapshot, and who to wake.

It owns the account's HTTP client (rebuilt when the CA bundle changes, with its CA file), its
provider and rate budgets (rebuilt when the cloud changes, reconfigured when the budgets do),
and the CloudAccount's status. See docs/architecture.md, "Data flow", step 2.
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
from typing import Any

import httpx
from pydantic import ValidationError

from cloudinfer.api.cloudaccount import CloudAccountSpec
from cloudinfer.api.conditions import ConditionType, Reason
from cloudinfer.cloud.allowlist import EndpointAllowList
from cloudinfer.cloud.clock import SystemClock
from cloudinfer.cloud.errors import CloudError, MalformedResponseError
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.model import ObservedService, Phase
from cloudinfer.cloud.provider import CloudProvider, Progress
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.accounts import (
    AccountConfig,
    AccountSetupError,
    account_config,
    new_budgets,
    new_provider,
)
from cloudinfer.reconcile.claims import Identity, Unknown, cloud_identity
from cloudinfer.reconcile.fence import NotHolder, WriteFence, answer_deadline
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL, Key, KubeAccess
from cloudinfer.reconcile.metrics import AccountState, Metrics
from cloudinfer.reconcile.outcomes import (
    error_message,
    error_reason,
    invalid_spec_message,
    validation_problems,
)

logger = logging.getLogger("cloudinfer")

# After an error the observer waits at least this long, doubling up to the steady interval.
ERROR_BACKOFF_SECONDS = 2.0
ACTIVE_POLL_DUTY_CYCLE = 0.1
"""While writes wait for rate budget, lists take at most this share of the time: an account of
1,000 services is 10 pages, and listing them every second kept the event loop busy enough to
delay writes. At 10 accounts of 1,000 services lists were still a fifth of the operator's
CPU during convergence with 0.25 (a sampled profile); with 0.1 the measured CPU per service
moved within the run-to-run spread (bench/README.md, session 8). Once none waits (the
convergence's tail: the last writes' transitions), the active interval applies alone, so the
last transition is seen sooner."""


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
    account: str | None = None
    """The account fingerprint: the CloudAccount's uid and generation and its Secret's
    resourceVersion. A write refused for good is held only while it stays the same."""
    complete: bool = True
    """False while the account's first observation is still reading services one by one
    (ModelArts details): a service not in it yet is not known to be missing."""


class AccountObserver:
    """One background loop per CloudAccount: batched list calls, one snapshot, notifications."""

    def __init__(
        self,
        key: Key,
        kube: KubeAccess,
        metrics: Metrics,
        on_identity_change: Callable[[], None] | None = None,
        *,
        allow_list: EndpointAllowList,
        user_agent: str | None = None,
        fence: WriteFence | None = None,
    ) -> None:
        self.key = key
        self._user_agent = user_agent
        self._fence = fence
        self.kube = kube
        self.metrics = metrics
        self.allow_list = allow_list
        self.snapshot = Snapshot()
        self._on_identity_change = on_identity_change
        self._reported_identity: Identity | Unknown | None = Unknown.PENDING
        self._subscribers: dict[str, set[asyncio.Event]] = {}
        self._wake = asyncio.Event()
        self._poll_now = False
        self._last_started = 0.0  # time.monotonic() when the last observation began
        self._active_delay = 0.0  # seconds between observations while a service is active
        self._duty_delay = 0.0  # ... and at least this long while writes wait for budget
        self._active: set[str] = set()
        self._client: httpx.AsyncClient | None = None
        self._ca_file: Path | None = None
        self._client_ca: str | None = None
        self._clock = SystemClock()
        self._budgets_cloud: str | None = None
        self._provider: CloudProvider | None = None
        self._written: dict[str, Any] | None = None
        self._secret_version: str | None = None

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
        secret = await self.kube.read_secret(namespace, spec.credentials_secret_ref.name)
        self._secret_version = secret.resource_version if secret is not None else None
        ca_pem = None
        if spec.ca_bundle_ref is not None:
            ref = spec.ca_bundle_ref
            ca_pem = await self.kube.read_configmap_key(namespace, ref.name, ref.key)
        data = secret.data if secret is not None else None
        config = account_config(f"{namespace}/{name}", spec, data, ca_pem, self.allow_list)
        if self._client is None or ca_pem != self._client_ca:
            await self._close_client()
            ca_path = None
            if ca_pem:
                # httpx wants a file; the pod's /tmp is a writable emptyDir.
                handle, raw_path = tempfile.mkstemp(prefix="cloudinfer-ca-", suffix=".pem")
                with os.fdopen(handle, "w") as out:
                    out.write(ca_pem)
                ca_path = self._ca_file = Path(raw_path)
            self._client = new_async_client(
                ca_bundle=ca_path,
                headers={"User-Agent": self._user_agent} if self._user_agent else None,
                before_send=self._fenced if self._fence is not None else None,
            )
            self._client_ca = ca_pem
            self._provider = None
        if self._provider is None or self._budgets_cloud != spec.provider:
            budgets = new_budgets(config.account.cloud, self._clock)
            self._provider = new_provider(config.account.cloud, self._client, budgets, self._clock)
            self._budgets_cloud = spec.provider
            self._budgets = budgets
            budgets.record_calls_with(self.metrics.call_recorder(spec.provider))
            self._budget_overrides: Mapping[str, Any] | None = None
        if config.budget_overrides != self._budget_overrides:
            self._budgets.configure(config.account.name, config.budget_overrides)
            self._budget_overrides = config.budget_overrides
        return config, self._provider

    async def _fenced(self, _request: httpx.Request) -> None:
        """Sharding: no call at all, read or write, for an account this replica does not hold
        (the cloud's rate limit is per account; a second caller would overrun it)."""
        if self._fence is not None:
            answer_deadline(self._fence, self.key)

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
            await self._account_status(
                body, generation, False, Reason.INVALID_SPEC, invalid_spec_message(err)
            )
            return 60.0
        try:
            config, provider = await self._configure(name, namespace, spec)
            # Timed from here, not before the Secret read: during an etcd outage that read
            # waits for etcd, and counting it made the next active list come a minute late.
            started = self._last_started = time.monotonic()
            # The list may start before one of our writes and end after it: the observation
            # is as old as its start, or the write would look observed and be repeated.
            listed_at = _now()
            fingerprint = f"{meta.get('uid', '')}/{generation}/{self._secret_version}"
            progress = None
            if self.snapshot.observed_at is None:  # nothing to act on yet: act as it comes
                progress = self._publish_partial(
                    Snapshot({}, listed_at, None, config, provider, fingerprint, complete=False)
                )
            listed = await self._list(provider, config, spec, progress)
        except (CloudError, AccountSetupError) as err:
            self.metrics.observe_errors.labels(spec.provider, error_reason(err)).inc()
            self._report_metrics(name, namespace, spec)
            self.snapshot.error = err
            self._notify()
            self._report_identity()
            await self._account_status(
                body, generation, False, error_reason(err), error_message(err)
            )
            return min(float(spec.poll_interval_seconds), ERROR_BACKOFF_SECONDS * 4)
        listing_took = time.monotonic() - started
        self.metrics.observe_seconds.labels(spec.provider).observe(listing_took)
        transitioning = self._take(Snapshot(
            {service.service_id: service for service in listed}, listed_at, None, config, provider,
            fingerprint,
        ))  # fmt: skip
        self.metrics.snapshot_services.labels(f"{namespace}/{name}").set(len(listed))
        self._report_metrics(name, namespace, spec)
        await self._account_status(
            body, generation, True, Reason.CREDENTIALS_VERIFIED,
            f"listed {len(listed)} services", services_seen=len(listed),
        )  # fmt: skip
        # Never slower than the steady interval, however long a list took.
        steady = float(spec.poll_interval_seconds)
        self._active_delay = min(steady, float(spec.active_poll_interval_seconds))
        self._duty_delay = min(steady, listing_took / ACTIVE_POLL_DUTY_CYCLE)
        if self._active or transitioning:
            return self._active_delay_now()
        return steady

    def _active_delay_now(self) -> float:
        """The active interval, stretched to the list's duty cycle only while writes wait for
        budget: asked again at each wake-up, so the convergence's last writes are observed
        one active interval after the last list, not one duty cycle after."""
        if self._writes_waiting():
            return max(self._active_delay, self._duty_delay)
        return self._active_delay

    def _writes_waiting(self) -> bool:
        """Some call of this account waits for rate budget (the list's own is over)."""
        budgets = getattr(self, "_budgets", None)  # set by the first _configure
        return budgets is not None and any(b.waiting for _, _, b in budgets.buckets())

    def _report_metrics(self, name: str, namespace: str, spec: CloudAccountSpec) -> None:
        """The account's budgets and the age of its last good observation, for the gauges
        computed at scrape time (metrics.py)."""
        observed_at = self.snapshot.observed_at
        self.metrics.account_state(
            f"{namespace}/{name}",
            AccountState(
                cloud=spec.provider,
                last_success=observed_at.timestamp() if observed_at is not None else None,
                poll_interval=float(spec.poll_interval_seconds),
                budgets=getattr(self, "_budgets", None),  # set by the first _configure
            ),
        )

    def _publish_partial(self, partial: Snapshot) -> Progress:
        """The first observation, published as it is read: each service's reconciler may act
        as soon as its service is in, while the list reads the rest. Its time is the list's
        start, as for a whole one. Published at the first service read, so an account whose
        list fails claims nothing, as before."""

        def seen(service: ObservedService) -> None:
            if not partial.services:
                self.snapshot = partial
                self._report_identity()
            if self.snapshot is partial:
                partial.services[service.service_id] = service
                self._notify({service.service_id})

        return seen

    @staticmethod
    async def _list(
        provider: CloudProvider,
        config: AccountConfig,
        spec: CloudAccountSpec,
        progress: Progress | None = None,
    ) -> list[ObservedService]:
        try:
            return await provider.list_services(config.account, progress)
        except ValidationError as invalid:  # a reply the parser let through, the model not
            raise MalformedResponseError(
                "a listed service does not fit the model: " + validation_problems(invalid),
                cloud=spec.provider,
            ) from invalid

    def _take(self, fresh: Snapshot) -> bool:
        """Keep a successful observation and wake whoever it concerns; returns whether a
        subscribed service is transitioning."""
        changed = {
            sid
            for sid in fresh.services.keys() | self.snapshot.services.keys()
            # A service whose list item is unchanged is the same object (cloud/listcache.py).
            if (new := fresh.services.get(sid)) is not (old := self.snapshot.services.get(sid))
            and new != old
        }
        # On recovery, everyone's conditions clear the error; on a new account fingerprint,
        # everyone's held writes are lifted.
        wake_all = (
            self.snapshot.error is not None
            or fresh.account != self.snapshot.account
            or not self.snapshot.complete  # who was not in the partial one learns it now
        )
        self.snapshot = fresh
        self._report_identity()
        # Active services wait for an observation newer than their write, changed or not.
        self._notify(None if wake_all else changed | self._active)
        services = fresh.services
        self._active = {sid for sid in self._active if sid in services and sid in self._subscribers}
        return any(
            services[sid].phase is Phase.TRANSITIONING
            for sid in self._subscribers
            if sid in services
        )

    def forget(self, *, notify: bool = True) -> None:
        """The CloudAccount is gone: drop its snapshot and (`notify`) tell its services."""
        self.snapshot = Snapshot()
        if notify:
            self._notify()
        self.metrics.forget_account("/".join(self.key))

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
                except NotHolder as lost:
                    # Sharding: the account went to another replica mid-list; `stopped`
                    # says so now, unless this replica got it back meanwhile.
                    logger.info("%s", lost, extra={"resource": "/".join(self.key)})
                    delay = 0.0
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
            self.metrics.forget_account("/".join(self.key))
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
            deadline = min(deadline, self._last_started + self._active_delay_now())
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
