"""coordination.k8s.io/v1 Leases over the operator's apiserver session (sharding.py uses them).

Create, replace (guarded by the resourceVersion read: optimistic concurrency, so two replicas
can never both win the same takeover) and list by label. No client library, no threads.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from cloudinfer.main.apiserver import (
    CONNECTION,
    ApiserverConnection,
    decode,
    path_segment,
    status_message,
)
from cloudinfer.main.kube import REQUEST_TIMEOUT, KubeApiError

CONFLICT: Final = 409
ALREADY_EXISTS: Final = 409


class LeaseConflict(Exception):
    """Someone else created or changed the Lease first: read it again."""


@dataclass(frozen=True)
class LeaseRecord:
    """One Lease as read."""

    name: str
    resource_version: str
    holder: str
    """`spec.holderIdentity`; empty when released."""
    duration: float
    renewed: str
    """`spec.renewTime` as the apiserver stores it; compared for change only, never with the
    local clock (replicas' clocks may differ)."""
    transitions: int
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def micro_time(now: datetime.datetime | None = None) -> str:
    """A MicroTime as the apiserver wants it."""
    when = now or datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(body: Mapping[str, Any]) -> LeaseRecord:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return LeaseRecord(
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        holder=str(spec.get("holderIdentity") or ""),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        renewed=str(spec.get("renewTime") or spec.get("acquireTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def lease_body(
    name: str, *, holder: str, duration: int, transitions: int, labels: Mapping[str, str],
    annotations: Mapping[str, str], resource_version: str | None = None,
    acquired: bool = False,
) -> dict[str, Any]:  # fmt: skip
    now = micro_time()
    meta: dict[str, Any] = {"name": name, "labels": dict(labels), "annotations": dict(annotations)}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    spec: dict[str, Any] = {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration,
        "renewTime": now,
        "leaseTransitions": transitions,
    }
    if acquired:
        spec["acquireTime"] = now
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec,
    }  # fmt: skip


class LeaseClient:
    """The Leases of one namespace."""

    def __init__(self, namespace: str, connection: ApiserverConnection = CONNECTION) -> None:
        self.namespace = namespace
        self._connection = connection

    def _path(self, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{path_segment(self.namespace)}/leases"
        return base if name is None else f"{base}/{path_segment(name)}"

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        session, server = await self._connection.current()
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        async with session.request(
            method, server + path, data=data, headers=headers, params=params,
            timeout=REQUEST_TIMEOUT,
        ) as response:  # fmt: skip
            if response.status == CONFLICT:
                raise LeaseConflict(f"{method} {path}: HTTP {response.status}")
            if response.status >= 400:
                raise KubeApiError(method, path, response.status, await status_message(response))
            reply = decode(await response.read())
        if not isinstance(reply, dict):
            raise KubeApiError(method, path, 200, "the reply is not a JSON object")
        return reply

    async def list(self, selector: str) -> list[LeaseRecord]:
        reply = await self._send("GET", self._path(), params={"labelSelector": selector})
        return [_record(item) for item in reply.get("items") or []]

    async def create(self, body: Mapping[str, Any]) -> LeaseRecord:
        """Raises LeaseConflict if it exists already."""
        return _record(await self._send("POST", self._path(), body))

    async def replace(self, body: Mapping[str, Any]) -> LeaseRecord:
        """Raises LeaseConflict unless the Lease is still at the resourceVersion in `body`."""
        name = str(body["metadata"]["name"])
        return _record(await self._send("PUT", self._path(name), body))

    async def delete(self, name: str, resource_version: str) -> None:
        """Delete it if unchanged since read; gone already is fine."""
        options = {"preconditions": {"resourceVersion": resource_version}}
        try:
            await self._send("DELETE", self._path(name), options)
        except KubeApiError as err:
            if err.status != 404:
                raise
        except (LeaseConflict, aiohttp.ClientError):
            pass
