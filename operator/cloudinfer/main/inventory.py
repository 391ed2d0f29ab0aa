"""Every InferenceService and CloudAccount the operator serves, listed once before any daemon
acts, then kept current by Kopf's events.

The claim rule (reconcile/claims.py) must know every claimant before a reconciler writes, and
the in-use holds (holds.py) every service before they release anything. Kopf's indexes gave
that, but Kopf then holds every object behind one gate whose cost grows about as N^1.6
(bench/README.md, "Scale"). Here one paginated LIST per kind, after login, fills the same
registries; `ready` is set when both are listed, and the daemons and services' tasks wait
for it. With peering the first daemon or event starts the listing, so a standby peer lists
only when it takes over; without, it starts at once.

InferenceServices can also be watched here (`watched`: without peering, where no standby must
be kept from seeing them): the listing's resourceVersion starts a watch of our own, re-listed
when it expires, and Kopf delivers none of their events — no Kopf state or handler machinery
per object (bench/README.md, "What grows with N").

For what Kopf lists and watches on its own at the same time, the two sources are merged thus:
- an event wins: an object that had an event before the listing reached it keeps what the
  event said (the listing may be older);
- an object the listing saw but that was deleted before Kopf's own listing gets no event.
  So what came from the listing alone is provisional until an event confirms it; once no
  confirmation has come for `SETTLE_SECONDS`, each one still provisional is read (GET) and
  forgotten if it is gone. Normally Kopf's initial listing confirms every one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Protocol

from kopf._cogs.structs.references import NamespaceName, match_namespace  # the --namespace rule

from cloudinfer.main.kube import WatchExpired
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL, SERVICES_PLURAL

logger = logging.getLogger("cloudinfer")

Key = tuple[str, str]  # (namespace, name)
Ref = tuple[str, Key]  # (plural, key)
PLURALS: Final = (ACCOUNTS_PLURAL, SERVICES_PLURAL)
SETTLE_SECONDS: Final = 30.0
"""Provisional objects are checked once Kopf has confirmed none for this long."""
RETRY_SECONDS: Final = 5.0
"""After a failed LIST (the apiserver away, RBAC missing), try again this much later."""


class ObjectSource(Protocol):
    """The apiserver reads of the inventory; implemented by cloudinfer.main.kube."""

    def list_pages(
        self, plural: str, namespace: str | None
    ) -> AsyncIterator[list[dict[str, Any]]]: ...

    def list_versioned(
        self, plural: str, namespace: str | None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]: ...

    def watch(
        self, plural: str, namespace: str | None, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def read_object(
        self, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...


class Sink(Protocol):
    """Where objects go: the same calls the event handlers make."""

    def seen(self, plural: str, key: Key, body: Mapping[str, Any]) -> None: ...

    def gone(self, plural: str, key: Key) -> None: ...


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def list_scopes(patterns: tuple[str, ...]) -> tuple[str | None, ...]:
    """Namespaces to list one by one, or (None,) for one list of all namespaces (no
    --namespace, or a glob among them: filtered by `served`)."""
    if not patterns or any(c in p for p in patterns for c in "*?!,"):
        return (None,)
    return tuple(dict.fromkeys(patterns))


def served(namespace: str, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(match_namespace(NamespaceName(namespace), p) for p in patterns)


Scope = tuple[str, str | None]  # (plural, namespace or None for all)


class Inventory:
    def __init__(
        self, source: ObjectSource, sink: Sink, namespaces: tuple[str, ...],
        *, watched: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self._source = source
        self._sink = sink
        self._namespaces = namespaces
        self.watched = watched
        """Plurals watched here rather than by Kopf."""
        self._versions: dict[Scope, str] = {}
        self._known: dict[Scope, set[Key]] = {}
        self._watches: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        """Set once every kind was listed: the registries hold every object."""
        self._evented: set[Ref] = set()
        """Objects an event reported while the listing ran (the listing must not undo it)."""
        self._provisional: set[Ref] = set()
        self._confirmed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="inventory")

    async def close(self) -> None:
        tasks = [*self._watches, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def event(self, plural: str, key: Key) -> None:
        """Kopf delivered an event for this object (call before handling it)."""
        ref = (plural, key)
        if not self.ready.is_set():
            self._evented.add(ref)
        if ref in self._provisional:
            self._provisional.discard(ref)
            self._confirmed.set()

    @property
    def provisional(self) -> int:
        return len(self._provisional)

    async def _run(self) -> None:
        while True:
            try:
                await self._list_all()
                break
            except Exception as err:
                logger.warning("listing InferenceServices and CloudAccounts failed: %s", err)
                await asyncio.sleep(RETRY_SECONDS)
        self._evented.clear()
        self.ready.set()
        logger.info(
            "listed every InferenceService and CloudAccount; %d not yet confirmed by a watch",
            len(self._provisional),
        )
        loop = asyncio.get_running_loop()
        for scope in self._versions:
            self._watches.append(loop.create_task(self._watch(scope), name=f"watch {scope}"))
        await self._settle()

    async def _list_all(self) -> None:
        for plural in PLURALS:
            for scope in list_scopes(self._namespaces):
                if plural in self.watched:
                    await self._list_watched((plural, scope))
                    continue
                async for page in self._source.list_pages(plural, scope):
                    for body in page:
                        key = key_of(body)
                        ref = (plural, key)
                        if ref in self._evented or not served(key[0], self._namespaces):
                            continue
                        self._sink.seen(plural, key, body)
                        self._provisional.add(ref)
                    del page

    # -- what is watched here ------------------------------------------------------------------

    async def _list_watched(self, scope: Scope) -> None:
        """List afresh: what the listing has is seen, what it lacks (deleted while no watch
        ran) is gone; the watch goes on from the listing's resourceVersion."""
        plural, namespace = scope
        listed: set[Key] = set()
        version = ""
        async for page, page_version in self._source.list_versioned(plural, namespace):
            version = page_version
            for body in page:
                key = key_of(body)
                if served(key[0], self._namespaces):
                    listed.add(key)
                    self._sink.seen(plural, key, body)
            del page
        for key in self._known.get(scope, set()) - listed:
            self._sink.gone(plural, key)
        self._known[scope] = listed
        self._versions[scope] = version

    async def _watch(self, scope: Scope) -> None:
        plural, namespace = scope
        while True:
            try:
                async for kind, body in self._source.watch(
                    plural, namespace, self._versions[scope]
                ):
                    self._apply(scope, kind, body)
            except WatchExpired:
                logger.info("the watch of %s expired; listing them again", plural)
                await self._relist(scope)
            except Exception as err:
                logger.warning("watching %s failed: %s", plural, str(err) or type(err).__name__)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self, scope: Scope) -> None:
        while True:
            try:
                await self._list_watched(scope)
                return
            except Exception as err:
                logger.warning("listing %s again failed: %s", scope[0], err)
                await asyncio.sleep(RETRY_SECONDS)

    def _apply(self, scope: Scope, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if meta.get("resourceVersion"):
            self._versions[scope] = str(meta["resourceVersion"])
        if kind == "BOOKMARK":
            return
        key = key_of(body)
        if not served(key[0], self._namespaces):
            return
        known = self._known.setdefault(scope, set())
        if kind == "DELETED":
            known.discard(key)
            self._sink.gone(scope[0], key)
        else:
            known.add(key)
            self._sink.seen(scope[0], key, body)

    # -- what Kopf watches ---------------------------------------------------------------------

    async def _settle(self) -> None:
        """Wait while events confirm objects; then read the rest, once each."""
        while self._provisional:
            self._confirmed.clear()
            try:
                await asyncio.wait_for(self._confirmed.wait(), timeout=SETTLE_SECONDS)
                continue
            except TimeoutError:
                pass
            for ref in list(self._provisional):
                await self._check(ref)

    async def _check(self, ref: Ref) -> None:
        plural, (namespace, name) = ref
        try:
            body = await self._source.read_object(plural, namespace, name)
        except Exception as err:
            logger.warning("reading %s %s/%s failed: %s", plural, namespace, name, err)
            return
        if ref not in self._provisional:  # an event came meanwhile
            return
        self._provisional.discard(ref)
        if body is None:
            self._sink.gone(plural, (namespace, name))
        else:
            self._sink.seen(plural, (namespace, name), body)
