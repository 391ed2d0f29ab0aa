"""The in-use finalizer: what a Stop on delete needs stays until the services needing it go.

An InferenceService with `policy.onDelete: Stop` needs, to stop its cloud service when it is
deleted, its CloudAccount, the account's credentials Secret and its CA ConfigMap. Deleting a
namespace deletes them all at once, in no order, and a Secret without a finalizer is gone at
once. So while such an InferenceService exists and is not released, each of the three carries
the finalizer `cloudinfer.dev/in-use` (a finalizer cannot be added once deletion has begun,
so it is there beforehand); when the last of them is released, the finalizer goes. The
CloudAccount records in the annotation `cloudinfer.dev/in-use-refs` which Secret and ConfigMap
it holds, so that they are released even if its spec names others by then, or the operator
restarted meanwhile. docs/architecture.md, "Deletion path", tells the whole story.

Fed by the start-up listing (inventory.py) and the watch events. It writes nothing until
`enable()`, which the handlers call once every object was listed: before that, a
CloudAccount seen without its services would look unneeded and be released.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cloudinfer.api.conditions import FINALIZER, IN_USE_ANNOTATION, IN_USE_FINALIZER
from cloudinfer.main.kube import HeldKind, MetadataConflict

logger = logging.getLogger("cloudinfer")

Key = tuple[str, str]  # (namespace, name)
CONFLICT_ATTEMPTS: Final = 3
"""Reads and patches of one object before a sync gives up on it and is retried later."""
CONFLICT_RETRY_SECONDS: Final = 1.0
RETRY_SECONDS: Final = (2.0, 5.0, 10.0, 30.0, 60.0)
"""Delays before a failed sync of one CloudAccount is tried again (the last one repeats)."""


class MetadataAccess(Protocol):
    """The apiserver calls of the keeper; implemented by cloudinfer.main.kube."""

    async def read_metadata(
        self, kind: HeldKind, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def patch_metadata(
        self, kind: HeldKind, namespace: str, name: str, resource_version: str,
        ops: list[dict[str, Any]],
    ) -> dict[str, Any] | None: ...  # fmt: skip


@dataclass(frozen=True, order=True)
class Ref:
    """A Secret or ConfigMap in the CloudAccount's namespace."""

    kind: HeldKind
    name: str

    def text(self) -> str:
        return f"{self.kind}/{self.name}"


def refs_of(spec: Mapping[str, Any]) -> frozenset[Ref]:
    """The Secret and CA ConfigMap a CloudAccount spec names (read raw: a spec that fails
    validation still names them)."""
    refs = set()
    secret = (spec.get("credentialsSecretRef") or {}).get("name")
    if isinstance(secret, str) and secret:
        refs.add(Ref("Secret", secret))
    ca = (spec.get("caBundleRef") or {}).get("name")
    if isinstance(ca, str) and ca:
        refs.add(Ref("ConfigMap", ca))
    return frozenset(refs)


def recorded_refs(meta: Mapping[str, Any]) -> frozenset[Ref]:
    """What the CloudAccount's in-use record says it holds (unreadable entries are skipped:
    a hand-edited record must not stop the rest from being released)."""
    raw = (meta.get("annotations") or {}).get(IN_USE_ANNOTATION)
    try:
        entries = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        entries = []
    refs = set()
    for entry in entries if isinstance(entries, list) else []:
        kind, _, name = str(entry).partition("/")
        if kind in ("Secret", "ConfigMap") and name:
            refs.add(Ref("Secret" if kind == "Secret" else "ConfigMap", name))
    return frozenset(refs)


def record_value(refs: frozenset[Ref]) -> str:
    return json.dumps(sorted(ref.text() for ref in refs))


def needed_account(body: Mapping[str, Any]) -> Key | None:
    """The CloudAccount an InferenceService needs kept for its stop on delete: one with
    `policy.onDelete: Stop`, until it is released (its finalizer is gone while deleting)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    if (spec.get("policy") or {}).get("onDelete") != "Stop":
        return None
    account = (spec.get("accountRef") or {}).get("name")
    if not isinstance(account, str) or not account:
        return None
    if meta.get("deletionTimestamp") and FINALIZER not in (meta.get("finalizers") or []):
        return None
    return (str(meta.get("namespace") or ""), account)


def _pointer(key: str) -> str:
    """`key` as one JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def finalizer_ops(meta: Mapping[str, Any], finalizer: str, present: bool) -> list[dict[str, Any]]:
    """JSON patch ops that add or remove `finalizer`, leaving the others as they are."""
    current = list(meta.get("finalizers") or [])
    if (finalizer in current) == present:
        return []
    if present:
        return [{"op": "add", "path": "/metadata/finalizers", "value": [*current, finalizer]}]
    kept = [f for f in current if f != finalizer]
    if not kept:
        return [{"op": "remove", "path": "/metadata/finalizers"}]
    return [{"op": "replace", "path": "/metadata/finalizers", "value": kept}]


def guarded_finalizer_ops(
    meta: Mapping[str, Any], finalizer: str, present: bool
) -> list[dict[str, Any]]:
    """`finalizer_ops`, preceded by a `test` of the finalizer list they were computed from
    (not of the resourceVersion, which every status write moves): the patch fails only if
    someone changed the finalizers meanwhile. With no finalizer at all there is no list to
    test."""
    ops = finalizer_ops(meta, finalizer, present)
    current = list(meta.get("finalizers") or [])
    if not ops or not current:
        return ops
    return [{"op": "test", "path": "/metadata/finalizers", "value": current}, *ops]


def annotation_ops(meta: Mapping[str, Any], key: str, value: str | None) -> list[dict[str, Any]]:
    """JSON patch ops that set (or, with None, remove) one annotation."""
    annotations = meta.get("annotations") or {}
    if annotations.get(key) == value:
        return []
    if value is None:
        return [{"op": "remove", "path": f"/metadata/annotations/{_pointer(key)}"}]
    if "annotations" not in meta or meta["annotations"] is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
    return [{"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value}]


@dataclass(frozen=True)
class Dependent:
    account: Key
    deleting: bool


class HoldKeeper:
    """Keeps `cloudinfer.dev/in-use` on what each CloudAccount's Stop-on-delete services need.

    One task syncs one CloudAccount at a time, so two accounts sharing a Secret never race
    over it. A sync that fails (the apiserver is away, a refusal) is retried with backoff.
    """

    def __init__(
        self, kube: MetadataAccess, *, keeps: Callable[[Key], bool] = lambda _: True
    ) -> None:
        self._kube = kube
        self._keeps = keeps
        """Whether this process keeps the account's holds (sharding: the replica holding it;
        every replica sees every object, so they would agree, but fight while they don't)."""
        self._accounts: dict[Key, dict[str, Any]] = {}
        """The latest body of every CloudAccount (metadata and spec only)."""
        self._gone: dict[Key, frozenset[Ref]] = {}
        """Deleted CloudAccounts' records not yet released (their finalizer was removed by
        hand)."""
        self._services: dict[Key, Dependent] = {}
        self._dependents: dict[Key, set[Key]] = {}
        self._dirty: dict[Key, None] = {}
        self._failures: dict[Key, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.enabled = False

    # -- what the listing and events report -------------------------------------------------

    def account_seen(self, key: Key, body: Mapping[str, Any]) -> None:
        meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
        self._accounts[key] = copy.deepcopy({"metadata": meta, "spec": body.get("spec") or {}})
        self._gone.pop(key, None)
        self._touch(key)

    def account_gone(self, key: Key) -> None:
        body = self._accounts.pop(key, None)
        recorded = recorded_refs(body["metadata"]) if body is not None else frozenset()
        if recorded:
            self._gone[key] = recorded
            self._touch(key)

    def service_seen(self, key: Key, body: Mapping[str, Any]) -> None:
        account = needed_account(body)
        deleting = bool((body.get("metadata") or {}).get("deletionTimestamp"))
        self._set_service(key, Dependent(account, deleting) if account is not None else None)

    def service_gone(self, key: Key) -> None:
        self._set_service(key, None)

    def _set_service(self, key: Key, new: Dependent | None) -> None:
        old = self._services.get(key)
        if old == new:
            return
        if old is not None:
            dependents = self._dependents.get(old.account, set())
            dependents.discard(key)
            if not dependents:
                self._dependents.pop(old.account, None)
                self._touch(old.account)  # the last one: release
            del self._services[key]
        if new is not None:
            self._services[key] = new
            dependents = self._dependents.setdefault(new.account, set())
            if not dependents:
                self._touch(new.account)  # the first one: hold
            dependents.add(key)

    # -- queries ------------------------------------------------------------------------------

    def needed(self, key: Key) -> bool:
        """Some InferenceService still needs this CloudAccount for its stop on delete."""
        return bool(self._dependents.get(key))

    def releasing(self, key: Key) -> bool:
        """Some InferenceService being deleted still needs this CloudAccount."""
        return any(self._services[s].deleting for s in self._dependents.get(key, ()))

    def account_body(self, key: Key) -> Mapping[str, Any] | None:
        """The CloudAccount as last seen, also while it is being deleted."""
        return self._accounts.get(key)

    # -- syncing ------------------------------------------------------------------------------

    def enable(self) -> None:
        """Start writing: every object has been listed now. Idempotent."""
        if self.enabled:
            return
        self.enabled = True
        for key in [*self._accounts, *self._gone]:
            self._dirty[key] = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="in-use holds")
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def resync(self, key: Key) -> None:
        """This process now keeps the account's holds (sharding: it gained the account)."""
        self._touch(key)

    def _touch(self, key: Key) -> None:
        self._dirty[key] = None
        if self.enabled:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                try:
                    await self.sync(key)
                except Exception as err:  # the apiserver is away, a refusal, a bug: retry
                    self._retry_later(key, err)
                else:
                    self._failures.pop(key, None)

    def _retry_later(self, key: Key, err: Exception) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]
        logger.warning(
            "in-use finalizers of CloudAccount %s/%s not synced (retry in %.0f s): %s",
            *key, delay, err, extra={"resource": "/".join(key)},
        )  # fmt: skip
        asyncio.get_running_loop().call_later(delay, self._touch, key)

    async def sync(self, key: Key) -> None:
        """Make the finalizers of one CloudAccount and of what it names match the need."""
        namespace = key[0]
        body = self._accounts.get(key)
        if not self._keeps(key):
            if body is None:
                self._gone.pop(key, None)  # its keeper releases what it recorded
            return
        if body is None:  # deleted with a record left: release what it held
            gone = self._gone.get(key, frozenset())
            released = [r for r in gone if not self._wanted_elsewhere(namespace, r, key)]
            await self._hold_each(namespace, released, present=False)
            self._gone.pop(key, None)
            return
        meta = body["metadata"]
        recorded = recorded_refs(meta)
        need = self.needed(key)
        desired = refs_of(body["spec"]) if need else frozenset()
        if need:
            # Record first: a crash between holding and recording must not leak a hold.
            ops = annotation_ops(meta, IN_USE_ANNOTATION, record_value(recorded | desired))
            if not meta.get("deletionTimestamp"):  # no finalizer may be added once deleting
                ops += finalizer_ops(meta, IN_USE_FINALIZER, True)
            if ops and (meta := await self._patch_account(key, meta, ops)) is None:
                return
            await self._hold_each(namespace, desired, present=True)
        unneeded = [r for r in recorded - desired if not self._wanted_elsewhere(namespace, r, key)]
        await self._hold_each(namespace, unneeded, present=False)
        if need:
            ops = annotation_ops(meta, IN_USE_ANNOTATION, record_value(desired))
        else:
            ops = annotation_ops(meta, IN_USE_ANNOTATION, None)
            ops += finalizer_ops(meta, IN_USE_FINALIZER, False)
        if ops:
            await self._patch_account(key, meta, ops)

    def _wanted_elsewhere(self, namespace: str, ref: Ref, but: Key) -> bool:
        """Another CloudAccount of the namespace needs `ref` held."""
        return any(
            other != but and other[0] == namespace and self.needed(other)
            and ref in refs_of(body["spec"])
            for other, body in self._accounts.items()
        )  # fmt: skip

    async def _patch_account(
        self, key: Key, meta: Mapping[str, Any], ops: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Patch the CloudAccount as last seen. On a conflict the watch brings the newer
        version, and with it another sync."""
        try:
            new = await self._kube.patch_metadata(
                "CloudAccount", key[0], key[1], str(meta.get("resourceVersion", "")), ops
            )
        except MetadataConflict:
            # Kopf changed it too (its own finalizer, its annotations); a sync follows the
            # watch event, and this one in case that event came first.
            asyncio.get_running_loop().call_later(CONFLICT_RETRY_SECONDS, self._touch, key)
            return None
        body = self._accounts.get(key)
        if new is not None and body is not None:
            body["metadata"] = new
        logger.info(
            "CloudAccount %s/%s: in-use finalizer %s", *key,
            "kept" if self.needed(key) else "removed", extra={"resource": "/".join(key)},
        )  # fmt: skip
        return new

    async def _hold_each(self, namespace: str, refs: Iterable[Ref], *, present: bool) -> None:
        """`_hold` for each ref, the Secret first; one failing does not stop the others."""
        failure: Exception | None = None
        for ref in sorted(refs, key=lambda r: (r.kind != "Secret", r.name)):
            try:
                await self._hold(namespace, ref, present=present)
            except Exception as err:  # each object on its own
                failure = failure or err
        if failure is not None:
            raise failure

    async def _hold(self, namespace: str, ref: Ref, *, present: bool) -> None:
        """Add or remove the finalizer on a Secret or ConfigMap, reading it first."""
        for _ in range(CONFLICT_ATTEMPTS):
            meta = await self._kube.read_metadata(ref.kind, namespace, ref.name)
            if meta is None:
                return  # no such object: nothing to hold or release
            if present and meta.get("deletionTimestamp"):
                return  # too late to add a finalizer
            ops = finalizer_ops(meta, IN_USE_FINALIZER, present)
            if not ops:
                return
            try:
                await self._kube.patch_metadata(
                    ref.kind, namespace, ref.name, str(meta.get("resourceVersion", "")), ops
                )
            except MetadataConflict:
                continue
            logger.info(
                "%s %s/%s: in-use finalizer %s", ref.kind, namespace, ref.name,
                "added" if present else "removed",
                extra={"resource": f"{namespace}/{ref.name}"},
            )  # fmt: skip
            return
        raise MetadataConflict(f"{ref.text()} in {namespace} kept changing")
