"""The few Kubernetes calls the reconcile layer makes, as a protocol `cloudinfer.main` implements.

Keeping them behind a protocol keeps Kopf and HTTP out of this layer, and lets the tests run
observers and reconcilers against a recording fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

ACCOUNTS_PLURAL = "cloudaccounts"
SERVICES_PLURAL = "inferenceservices"
Key = tuple[str, str]  # (namespace, name)


class KubeAccess(Protocol):
    """Read a Secret or ConfigMap, patch a status, post an event."""

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None: ...

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None: ...

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...
