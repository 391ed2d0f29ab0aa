"""KubeAccess over the operator's apiserver session: the runtime's few Kubernetes calls.

The calls share Kopf's aiohttp session (apiserver.py), so they need no client library and
no threads, and they count against the same bound on requests in flight. Secrets are read
on demand (get, never list or watch), so a rotated Secret takes effect at the next
observation. The only writes to a Secret, a ConfigMap or a CloudAccount's metadata are the
in-use finalizer and its record (holds.py), as JSON patches guarded by the resourceVersion
read. Events are posted by a few tasks, repeats aggregated (events.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
import orjson

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.main.apiserver import (
    CONNECTION,
    ApiserverConnection,
    decode,
    path_segment,
    status_message,
)
from cloudinfer.main.events import EventPoster
from cloudinfer.reconcile.kube_access import SecretData

NOT_FOUND: Final = 404
CONFLICT: Final = 409
GONE: Final = 410
UNPROCESSABLE: Final = 422
"""A JSON patch whose `test` op fails (the object changed since it was read)."""
REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
"""No total: a request may wait for one of the request slots as long as the queue needs
(apiserver.py bounds its time once it holds one); a silent connection still fails."""
LIST_PAGE: Final = 500
"""Objects per page of a LIST (inventory.py); a page of InferenceServices is ~1.5 MB."""
MAX_MESSAGE: Final = 300
"""Characters of the apiserver's Status message kept in an error."""
WATCH_SECONDS: Final = 270
"""A watch request's own timeout (the apiserver ends it; the watcher starts the next one)."""
WATCH_TIMEOUT: Final = aiohttp.ClientTimeout(
    total=None, sock_connect=10, sock_read=WATCH_SECONDS + 60
)
"""Bookmarks arrive about once a minute, so a silent stream this long is a dead one."""


class WatchExpired(Exception):
    """The resourceVersion to watch from is too old (HTTP 410): list again."""


class KubeApiError(Exception):
    """The apiserver refused a call. It names the call, the HTTP status and the Status
    message, never a response body: a Secret's body must not reach a log."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message[:MAX_MESSAGE]}")
        self.status = status


class MetadataConflict(Exception):
    """The object changed since its metadata was read: read it again and recompute."""


HeldKind = Literal["CloudAccount", "Secret", "ConfigMap"]
"""The kinds the in-use finalizer holds."""
MetadataKind = Literal[HeldKind, "InferenceService"]
"""The kinds whose metadata the operator patches (the in-use and Stop-on-delete finalizers)."""


def _collection(plural: str, namespace: str | None) -> str:
    where = f"namespaces/{path_segment(namespace)}/" if namespace is not None else ""
    return f"/apis/{GROUP}/{VERSION}/{where}{plural}"


def _watch_event(path: str, event: object) -> tuple[str, dict[str, Any]]:
    """A decoded watch line as (type, object); an ERROR event raises (410: WatchExpired)."""
    kind = str(event.get("type") or "") if isinstance(event, dict) else ""
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        raise KubeApiError("GET", path, 500, "a watch event without an object")
    if kind == "ERROR":
        code = int(obj.get("code") or 500)
        if code == GONE:
            raise WatchExpired(path)
        raise KubeApiError("GET", path, code, str(obj.get("message") or ""))
    return kind, obj


def object_path(kind: MetadataKind, namespace: str, name: str) -> str:
    ns, obj = path_segment(namespace), path_segment(name)
    if kind == "CloudAccount":
        return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/cloudaccounts/{obj}"
    if kind == "InferenceService":
        return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/inferenceservices/{obj}"
    plural = "secrets" if kind == "Secret" else "configmaps"
    return f"/api/v1/namespaces/{ns}/{plural}/{obj}"


class KubernetesAccess:
    """Implements cloudinfer.reconcile.kube_access.KubeAccess."""

    def __init__(
        self, connection: ApiserverConnection = CONNECTION, events: EventPoster | None = None
    ) -> None:
        self._connection = connection
        self.events = events or EventPoster(connection)

    async def _call(
        self, method: str, path: str, *, merge_patch: Mapping[str, Any] | None = None,
        json_patch: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:  # fmt: skip
        """The decoded reply, or None if the object does not exist."""
        session, server = await self._connection.current()
        headers = {"Accept": "application/json"}
        data = None
        if merge_patch is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            data = orjson.dumps(merge_patch)
        if json_patch is not None:
            headers["Content-Type"] = "application/json-patch+json"
            data = orjson.dumps(json_patch)
        async with session.request(
            method, server + path, data=data, headers=headers, timeout=REQUEST_TIMEOUT
        ) as response:
            if response.status == NOT_FOUND:
                return None
            if json_patch is not None and response.status in (CONFLICT, UNPROCESSABLE):
                raise MetadataConflict(f"{method} {path}: HTTP {response.status}")
            if response.status >= 400:
                raise KubeApiError(method, path, response.status, await status_message(response))
            body = decode(await response.read())
        if not isinstance(body, dict):
            raise KubeApiError(method, path, response.status, "the reply is not a JSON object")
        return body

    async def list_pages(
        self, plural: str, namespace: str | None, *, field_selector: str | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every object of one of our kinds, in pages (`namespace` None: all namespaces)."""
        async for page, _ in self.list_versioned(plural, namespace, field_selector=field_selector):
            yield page

    async def list_versioned(
        self, plural: str, namespace: str | None, *, field_selector: str | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Every object of one of our kinds, in pages, each with the list's resourceVersion
        (to watch from after the last page). An expired continue token (410) restarts the
        listing from the first page, so a caller sees some objects twice, never an object
        missed."""
        path = _collection(plural, namespace)
        selector = f"&fieldSelector={quote(field_selector, safe='')}" if field_selector else ""
        token = ""
        while True:
            query = f"?limit={LIST_PAGE}{selector}" + (
                f"&continue={quote(token, safe='')}" if token else ""
            )
            try:
                body = await self._call("GET", path + query)
            except KubeApiError as err:
                if err.status == GONE and token:
                    token = ""
                    continue
                raise
            if body is None:  # the namespace or the CRD is not there (yet)
                return
            meta = body.get("metadata") or {}
            yield list(body.get("items") or []), str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                return

    async def watch(
        self, plural: str, namespace: str | None, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """One watch request's events, (type, object), from `resource_version`, bookmarks
        included; it ends when the apiserver ends the request. Raises WatchExpired if that
        version is too old."""
        query = (
            f"?watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}"
            f"&resourceVersion={quote(resource_version, safe='')}"
        )
        path = _collection(plural, namespace) + query
        session, server = await self._connection.current()
        async with session.get(
            server + path, headers={"Accept": "application/json"}, timeout=WATCH_TIMEOUT
        ) as response:
            if response.status == GONE:
                raise WatchExpired(path)
            if response.status >= 400:
                raise KubeApiError("GET", path, response.status, await status_message(response))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _watch_event(path, decode(line))

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our objects, or None if it does not exist."""
        path = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{path_segment(namespace)}/{plural}/"
            f"{path_segment(name)}"
        )
        return await self._call("GET", path)

    async def _data(
        self, resource: str, namespace: str, name: str
    ) -> tuple[dict[str, str], str] | None:
        """An object's data and its resourceVersion, or None if it does not exist."""
        path = f"/api/v1/namespaces/{path_segment(namespace)}/{resource}/{path_segment(name)}"
        body = await self._call("GET", path)
        if body is None:
            return None
        data = body.get("data") or {}
        version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        return {str(key): str(value) for key, value in data.items()}, version

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        """The Secret's data, values base64-encoded as the API serves them, and its
        resourceVersion."""
        found = await self._data("secrets", namespace, name)
        return None if found is None else SecretData(*found)

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None:
        found = await self._data("configmaps", namespace, name)
        return None if found is None else found[0].get(key)

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        """A JSON merge patch of the status subresource; an object deleted meanwhile is
        nothing to report on."""
        path = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{path_segment(namespace)}/{plural}/"
            f"{path_segment(name)}/status"
        )
        await self._call("PATCH", path, merge_patch={"status": dict(patch)})

    async def read_metadata(
        self, kind: MetadataKind, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object's metadata, or None if there is no such object. A Secret's data is
        dropped here: this read is about finalizers, not credentials."""
        body = await self._call("GET", object_path(kind, namespace, name))
        return None if body is None else dict(body.get("metadata") or {})

    async def patch_metadata(
        self, kind: MetadataKind, namespace: str, name: str, resource_version: str | None,
        ops: list[dict[str, Any]],
    ) -> dict[str, Any] | None:  # fmt: skip
        """Apply JSON patch `ops` (under /metadata) if the object is still at
        `resource_version` (None: `ops` carry their own `test`); its new metadata, or None if
        it is gone. Raises MetadataConflict if it changed meanwhile."""
        guarded = ops
        if resource_version is not None:
            guarded = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                *ops,
            ]
        path = object_path(kind, namespace, name)
        body = await self._call("PATCH", path, json_patch=guarded)
        return None if body is None else dict(body.get("metadata") or {})

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.post(body, type_, reason, message)
