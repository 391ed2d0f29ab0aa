"""KubeAccess over the official client: the runtime's few Kubernetes calls, run in threads.

Secrets are read on demand (get, never list or watch), so a rotated Secret takes effect
at the next observation and the operator needs only `get` on Secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cloudinfer.api.common import GROUP, VERSION

NOT_FOUND = 404


def load_client() -> client.ApiClient:
    """In-cluster credentials when present, else the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubernetesAccess:
    """Implements cloudinfer.reconcile.runtime.KubeAccess."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        def read() -> dict[str, str] | None:
            try:
                secret = self._core.read_namespaced_secret(name, namespace)
            except ApiException as err:
                if err.status == NOT_FOUND:
                    return None
                raise
            return {key: str(value) for key, value in (secret.data or {}).items()}

        return await asyncio.to_thread(read)

    async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None:
        def read() -> str | None:
            try:
                configmap = self._core.read_namespaced_config_map(name, namespace)
            except ApiException as err:
                if err.status == NOT_FOUND:
                    return None
                raise
            value = (configmap.data or {}).get(key)
            return str(value) if value is not None else None

        return await asyncio.to_thread(read)

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        def write() -> None:
            try:
                self._custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, {"status": dict(patch)}
                )
            except ApiException as err:
                if err.status != NOT_FOUND:  # deleted meanwhile: nothing to report on
                    raise

        await asyncio.to_thread(write)

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]
