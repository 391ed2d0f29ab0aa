"""The few Kubernetes calls the reconcile layer makes, as a protocol `cloudinfer.main` implements.

Keeping them behind a protocol keeps Kopf and HTTP out of this layer, and lets the tests run
observers and reconcilers against a recording fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

ACCOUNTS_PLURAL = "cloudaccounts"
SERVICES_PLURAL = "inferenceservices"
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class SecretData:
    """A Secret's data (values base64-encoded, as the API serves them) and its version."""

    data: Mapping[str, str]
    resource_version: str
    """Part of the account fingerprint: a new one lifts the holds of refused writes."""

    def __repr__(self) -> str:
        return f"SecretData(keys={sorted(self.data)}, resource_version={self.resource_version!r})"


class KubeAccess(Protocol):
    """Read a Secret or ConfigMap, patch a status, post an event."""

    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None: ...

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None: ...

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...
