"""What the observers and reconcilers share: observers by CloudAccount, claims, the executor.

Neither the observers nor the reconcilers know about Kopf: `cloudinfer.main` drives them
from daemons and its own tasks, and hands in a `KubeAccess`. See docs/architecture.md for
the module map.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cloudinfer.cloud.allowlist import EndpointAllowList
from cloudinfer.reconcile.claims import ClaimRegistry, Identity, Unknown
from cloudinfer.reconcile.executor import WriteExecutor
from cloudinfer.reconcile.fence import WriteFence
from cloudinfer.reconcile.kube_access import Key, KubeAccess
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import AccountObserver

STATUS_WRITES_IN_FLIGHT = 16
"""Status writes sent at once; the others wait in turn, in the order they came (the apiserver
session admits 16 requests at once too, main/apiserver.py). A write builds its patch when its
turn comes, so one that waited while a newer observation arrived sends what that one says
(reconciler.py)."""


class Runtime:
    """Shared state: the observers, keyed by CloudAccount, the claims, and the metrics."""

    def __init__(
        self,
        kube: KubeAccess,
        metrics: Metrics,
        *,
        allow_list: EndpointAllowList,
        fence: WriteFence | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.allow_list = allow_list
        """Where cloud requests may go (--allowed-endpoint-host)."""
        self.fence = fence
        """Sharding mode: which accounts this replica may call the cloud for."""
        self.user_agent = user_agent
        self.status_turns = asyncio.Semaphore(STATUS_WRITES_IN_FLIGHT)
        """Status writes take turns here (STATUS_WRITES_IN_FLIGHT)."""
        self.executor = WriteExecutor(kube, metrics, fence=fence)
        """Every cloud write goes through it (reconcile and deletion alike)."""
        self.observers: dict[Key, AccountObserver] = {}
        self._account_waiters: dict[Key, set[asyncio.Event]] = {}
        self.claims = ClaimRegistry()
        """Which InferenceService owns each cloud service (claims.py)."""
        self.accounts: set[Key] = set()
        """Every CloudAccount in the apiserver (fed by the start-up listing and the events, like
        the claims): one whose observer has not started yet is pending, not absent, for the
        claim rule."""

    def observer(self, key: Key) -> AccountObserver:
        observer = self.observers.get(key)
        if observer is None:
            observer = self.observers[key] = self.new_observer(
                key, on_identity_change=self.claims.wake_contested
            )
            for waker in self._account_waiters.get(key, ()):
                waker.set()
        return observer

    def new_observer(
        self, key: Key, on_identity_change: Callable[[], None] | None = None
    ) -> AccountObserver:
        """An observer with this process's User-Agent and fence (not registered)."""
        return AccountObserver(
            key, self.kube, self.metrics, on_identity_change,
            allow_list=self.allow_list, user_agent=self.user_agent, fence=self.fence,
        )  # fmt: skip

    def drop_observer(self, key: Key, *, tell_services: bool = True) -> None:
        """The account's observer stopped. `tell_services`: because the account is gone;
        not when another process takes over (this one exits, pauses, or, sharding, lost
        the account): its services would report the account missing on the way out."""
        observer = self.observers.pop(key, None)
        if observer is not None:
            observer.forget(notify=tell_services)  # services learn their account is gone
            if tell_services:
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
