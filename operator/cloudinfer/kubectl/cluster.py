"""The plugin's few apiserver calls, through the `kubernetes` library, with every failure
turned into a one-line `PluginError` (docs/cli.md, "Exit codes").

The kubeconfig is loaded as kubectl loads it: `--kubeconfig`, else $KUBECONFIG (several files
merged), else ~/.kube/config; `--context` picks the context, whose namespace is the default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cloudinfer.kubectl.errors import ExitCode, PluginError

GROUP, VERSION = "cloudinfer.dev", "v1alpha1"
SERVICES, ACCOUNTS = "inferenceservices", "cloudaccounts"
KINDS = {SERVICES: "InferenceService", ACCOUNTS: "CloudAccount"}
TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts of every call: an unreachable apiserver fails in seconds."""
OPERATOR_NAME_LABEL = "app.kubernetes.io/name=cloudinfer-operator"
METRICS_SERVICE_LABELS = (
    "app.kubernetes.io/part-of=cloudinfer-operator,app.kubernetes.io/component=metrics"
)
"""The chart's metrics Service (charts/cloudinfer-operator/templates/service.yaml)."""
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
"""Asks for an object's metadata only: the plugin never receives a Secret's data."""

JsonDict = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """Where the plugin talks to: the kubeconfig's choice."""

    api: Any
    """kubernetes.client.ApiClient"""
    server: str
    namespace: str
    """The context's namespace, or "default"."""


def connect(kubeconfig: str | None, context: str | None) -> Connection:
    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        chosen = (
            next((c for c in contexts if c.get("name") == context), None) if context else active
        )
        if chosen is None:
            raise PluginError(
                ExitCode.UNREACHABLE,
                f"context {context!r} is not in the kubeconfig; `kubectl config get-contexts` "
                "lists them",
            )
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    except config.ConfigException as err:
        raise PluginError(
            ExitCode.UNREACHABLE,
            f"cannot use the kubeconfig: {_first_line(str(err))}; pass --kubeconfig or set "
            "KUBECONFIG",
        ) from None
    configuration.retries = 0  # fail fast and say so, rather than retry an unreachable host
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Connection(client.ApiClient(configuration), configuration.host, namespace)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _api_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return _first_line(str(message or err.reason or err.status))


class Cluster:
    """The calls the commands make. Each raises PluginError, never an ApiException."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # Any: the library's own types are stricter than the JSON they return.
        self.custom: Any = client.CustomObjectsApi(connection.api)
        self.core: Any = client.CoreV1Api(connection.api)
        self._crds_checked = False

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ApiException as err:
            if err.status in (401, 403):
                hint = (
                    "log in again or check the kubeconfig's user"
                    if err.status == 401
                    else "ask for RBAC access (docs/cli.md lists what the plugin reads)"
                )
                raise PluginError(
                    ExitCode.FORBIDDEN,
                    f"the apiserver refused to {what}: {_api_message(err)}; {hint}",
                ) from None
            if err.status == 0 or err.status is None:  # the library's own transport error
                raise self._unreachable(str(err.reason)) from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self._unreachable(str(err)) from None

    def _unreachable(self, detail: str) -> PluginError:
        detail = _first_line(detail)
        if "Errno 111" in detail or "refused" in detail.lower():
            detail = "connection refused"
        return PluginError(
            ExitCode.UNREACHABLE,
            f"cannot reach the apiserver at {self.connection.server} ({detail}); check that the "
            "cluster is up and --context/--kubeconfig",
        )

    def _call(self, what: str, call: Callable[[], T]) -> T:
        with self._errors(what):
            return call()

    def require_crds(self) -> None:
        """PluginError(CRD_MISSING) unless the apiserver serves cloudinfer.dev/v1alpha1."""
        if self._crds_checked:
            return
        try:
            resources = self._call(
                "read the API groups",
                lambda: self.custom.get_api_resources(GROUP, VERSION, _request_timeout=TIMEOUT),
            )
        except ApiException as err:
            if err.status != 404:
                raise PluginError(
                    ExitCode.INTERNAL, f"the apiserver answered {err.status}: {_api_message(err)}"
                ) from None
            resources = None
        names = {r.name for r in resources.resources} if resources is not None else set()
        if not {SERVICES, ACCOUNTS} <= names:
            raise PluginError(
                ExitCode.CRD_MISSING,
                f"the {GROUP} CRDs are not installed in this cluster; install them with "
                "`kubectl apply --server-side -f deploy/crds.yaml` or the Helm chart "
                "(docs/install.md)",
            )
        self._crds_checked = True

    def _not_found_or(self, err: ApiException, message: str) -> PluginError:
        """A 404 means the object is missing, unless the CRD itself is (checked now)."""
        if err.status != 404:
            return PluginError(
                ExitCode.INTERNAL, f"the apiserver answered {err.status}: {_api_message(err)}"
            )
        self.require_crds()
        return PluginError(ExitCode.NOT_FOUND, message)

    def get(self, plural: str, namespace: str, name: str) -> JsonDict:
        kind = KINDS[plural]
        try:
            obj: JsonDict = self._call(
                f"get {kind} {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, _request_timeout=TIMEOUT
                ),
            )
        except ApiException as err:
            raise self._not_found_or(
                err,
                f'{kind} "{name}" not found in namespace "{namespace}"; `kubectl cloudinfer '
                f"status -n {namespace}` lists what is there",
            ) from None
        return obj

    def list_all(self, plural: str, namespace: str | None) -> list[JsonDict]:
        """Every object of `plural` in `namespace`, or in all namespaces when None."""
        kind = KINDS[plural]
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        try:
            if namespace is None:
                found = self._call(
                    f"list {kind}s {where}",
                    lambda: self.custom.list_cluster_custom_object(
                        GROUP, VERSION, plural, _request_timeout=TIMEOUT
                    ),
                )
            else:
                found = self._call(
                    f"list {kind}s {where}",
                    lambda: self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, _request_timeout=TIMEOUT
                    ),
                )
        except ApiException as err:
            raise self._not_found_or(err, f"cannot list {kind}s {where}") from None
        items: list[JsonDict] = found.get("items") or []
        return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))

    def annotate(self, namespace: str, name: str, key: str, value: str | None) -> JsonDict:
        """Set (or with None, remove) one annotation of an InferenceService (a merge patch)."""
        patch = {"metadata": {"annotations": {key: value}}}
        try:
            obj: JsonDict = self._call(
                f"annotate InferenceService {namespace}/{name}",
                lambda: self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, SERVICES, name, patch, _request_timeout=TIMEOUT
                ),
            )
        except ApiException as err:
            raise self._not_found_or(
                err, f'InferenceService "{name}" not found in namespace "{namespace}"'
            ) from None
        return obj

    def secret_version(self, namespace: str, name: str) -> str | None:
        """A Secret's resourceVersion (metadata only), or None if it cannot be read."""
        try:
            response = self._call(
                f"read Secret {namespace}/{name}",
                lambda: self.core.read_namespaced_secret(
                    name, namespace, _preload_content=False, _request_timeout=TIMEOUT,
                    _headers={"Accept": PARTIAL_METADATA},
                ),
            )  # fmt: skip
        except (ApiException, PluginError):
            return None
        meta = json.loads(response.data).get("metadata") or {}
        version = meta.get("resourceVersion")
        return str(version) if version else None

    def metrics_services(self, namespace: str | None) -> list[tuple[str, str]]:
        """(namespace, name) of the chart's metrics Services."""
        found = self._list_core(
            "Services", namespace, METRICS_SERVICE_LABELS,
            self.core.list_service_for_all_namespaces, self.core.list_namespaced_service,
        )  # fmt: skip
        return sorted((s.metadata.namespace, s.metadata.name) for s in found.items)

    def _list_core(
        self,
        kind: str,
        namespace: str | None,
        selector: str,
        everywhere: Callable[..., T],
        in_namespace: Callable[..., T],
    ) -> T:
        """A labelled list of a core kind, in one namespace or (None) all of them."""
        if namespace is None:
            return self._call(
                f"list {kind}",
                lambda: everywhere(label_selector=selector, _request_timeout=TIMEOUT),
            )
        return self._call(
            f"list {kind} in namespace {namespace}",
            lambda: in_namespace(namespace, label_selector=selector, _request_timeout=TIMEOUT),
        )

    def proxy_metrics(self, namespace: str, service: str) -> str:
        """GET /metrics of a Service's `metrics` port through the apiserver's proxy."""
        text: str = self._call(
            f"proxy to Service {namespace}/{service}",
            lambda: self.core.connect_get_namespaced_service_proxy_with_path(
                f"{service}:metrics", namespace, "metrics", _request_timeout=TIMEOUT
            ),
        )
        return text

    def operator_pods(self, namespace: str | None) -> list[tuple[str, bool]]:
        """(namespace/name, ready) of the pods the chart runs the operator in."""
        found = self._list_core(
            "Pods", namespace, OPERATOR_NAME_LABEL,
            self.core.list_pod_for_all_namespaces, self.core.list_namespaced_pod,
        )  # fmt: skip
        pods = []
        for pod in found.items:
            conditions = (pod.status.conditions if pod.status else None) or []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            pods.append((f"{pod.metadata.namespace}/{pod.metadata.name}", ready))
        return sorted(pods)
