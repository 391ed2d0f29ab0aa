"""KubeAccess over the operator's apiserver session: the runtime's few Kubernetes calls.

The calls share Kopf's aiohttp session (apiserver.py), so they need no client library and
no threads, and they count against the same bound on requests in flight. Secrets are read
on demand (get, never list or watch), so a rotated Secret takes effect at the next
observation and the operator needs only `get` on Secrets. Events are posted in order by one
task (events.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.main.apiserver import (
    CONNECTION,
    ApiserverConnection,
    path_segment,
    status_message,
)
from cloudinfer.main.events import EventPoster
from cloudinfer.reconcile.kube_access import SecretData

NOT_FOUND: Final = 404
REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10)
MAX_MESSAGE: Final = 300
"""Characters of the apiserver's Status message kept in an error."""


class KubeApiError(Exception):
    """The apiserver refused a call. It names the call, the HTTP status and the Status
    message, never a response body: a Secret's body must not reach a log."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message[:MAX_MESSAGE]}")
        self.status = status


class KubernetesAccess:
    """Implements cloudinfer.reconcile.kube_access.KubeAccess."""

    def __init__(
        self, connection: ApiserverConnection = CONNECTION, events: EventPoster | None = None
    ) -> None:
        self._connection = connection
        self.events = events or EventPoster(connection)

    async def _call(
        self, method: str, path: str, *, merge_patch: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The decoded reply, or None if the object does not exist."""
        session, server = await self._connection.current()
        headers = {"Accept": "application/json"}
        data = None
        if merge_patch is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            data = json.dumps(merge_patch)
        async with session.request(
            method, server + path, data=data, headers=headers, timeout=REQUEST_TIMEOUT
        ) as response:
            if response.status == NOT_FOUND:
                return None
            if response.status >= 400:
                raise KubeApiError(method, path, response.status, await status_message(response))
            body = await response.json(content_type=None)
        if not isinstance(body, dict):
            raise KubeApiError(method, path, response.status, "the reply is not a JSON object")
        return body

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

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.post(body, type_, reason, message)
