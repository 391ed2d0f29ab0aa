"""Running the operator as users do (a process) against the real apiserver and the simulators.

Shared by the integration tests, the demo and the benchmarks.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client
from kubernetes.client.rest import ApiException

from cloudsim.core import Settings as SimSettings
from cloudsim.server import RunningSim, make_sim, serve_in_thread
from controlplane.launcher import free_port
from support import Cluster, wait_for

GROUP, VERSION = "cloudinfer.dev", "v1alpha1"
# Transitions short enough for tests, on a virtual clock that runs at real speed, so the
# operator's clock and the simulator's agree (stop schedules are absolute times).
FAST_SIM = {"scale_seconds": 2.0, "start_seconds": 2.0, "stop_seconds": 1.0}
PROVIDERS = ("tencent", "huawei", "baidu")


def start_simulators() -> dict[str, RunningSim]:
    sims = {}
    for cloud in PROVIDERS:
        sim = make_sim(cloud, seed=7, settings=SimSettings(**FAST_SIM))
        sims[cloud] = serve_in_thread(sim)
    return sims


@dataclass
class CloudAccountHandle:
    """A fresh account on a simulator with unique keys, and its CloudAccount resource."""

    provider: str
    sim: RunningSim
    name: str
    key_id: str
    secret: str
    project: str = ""
    compute_unit: str = ""

    def add_service(self, **spec: Any) -> str:
        spec.setdefault("account", self.name)
        if self.provider == "huawei":
            spec.setdefault("project_id", self.project)
        if self.provider == "baidu":
            replicas = spec.pop("replicas", 1)
            spec.setdefault("units", {self.compute_unit: replicas})
        return self.sim.control.add_service(**spec)


def new_sim_account(
    sim: RunningSim, provider: str, *, partial_config: str = "available"
) -> CloudAccountHandle:
    tag = uuid.uuid4().hex[:12]
    name = f"acct-{tag}"
    if provider == "tencent":
        key_id, secret = f"AKID{tag}{'0' * 20}", f"sk{tag}canary{uuid.uuid4().hex}"
        sim.control.add_account(
            name=name, secret_id=key_id, secret_key=secret, regions=["ap-guangzhou"],
            partial_config=partial_config,
        )  # fmt: skip
        return CloudAccountHandle(provider, sim, name, key_id, secret)
    if provider == "huawei":
        key_id, secret, project = f"HW{tag.upper()}", f"sk{tag}canary{uuid.uuid4().hex}", tag * 2
        sim.control.add_account(name=name, ak=key_id, sk=secret, projects=[project])
        return CloudAccountHandle(provider, sim, name, key_id, secret, project=project)
    key_id, secret, unit = f"ak{tag}", f"sk{tag}canary{uuid.uuid4().hex}", f"cu-{tag}"
    sim.control.add_account(
        name=name, ak=key_id, sk=secret, regions=["bj"],
        compute_units={unit: {"type": "GPU-I-2", "total_units": 512}},
    )  # fmt: skip
    return CloudAccountHandle(provider, sim, name, key_id, secret, compute_unit=unit)


REGIONS = {"tencent": "ap-guangzhou", "huawei": "cn-north-4", "baidu": "bj"}


class Kube:
    """Thin helpers over the official client for the resources the tests touch."""

    def __init__(self, api: client.ApiClient, cluster: Cluster) -> None:
        self.api = api
        self.cluster = cluster
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def create_secret(self, namespace: str, name: str, key_id: str, secret: str) -> None:
        self.core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={
                    "accessKeyId": base64.b64encode(key_id.encode()).decode(),
                    "secretAccessKey": base64.b64encode(secret.encode()).decode(),
                },
            ),
        )

    def create_account(
        self, namespace: str, handle: CloudAccountHandle, *, secret_name: str = "creds",
        with_secret: bool = True, name: str = "acct", poll: int = 5, active_poll: int = 1,
        endpoint: str | None = None,
    ) -> None:  # fmt: skip
        if with_secret:
            self.create_secret(namespace, secret_name, handle.key_id, handle.secret)
        spec: dict[str, Any] = {
            "provider": handle.provider,
            "region": REGIONS[handle.provider],
            # The operator may reach the simulator at another address than the test does
            # (in a kind cluster: the Service's DNS name).
            "endpoint": endpoint or handle.sim.base_url,
            "credentialsSecretRef": {"name": secret_name},
            "pollIntervalSeconds": poll,
            "activePollIntervalSeconds": active_poll,
        }
        if handle.provider == "huawei":
            spec["projectId"] = handle.project
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "cloudaccounts",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CloudAccount",
             "metadata": {"name": name}, "spec": spec},
        )  # fmt: skip

    def create_service(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        spec = {"accountRef": {"name": "acct"}, **spec}
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferenceservices",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
             "metadata": {"name": name}, "spec": spec},
        )  # fmt: skip

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferenceservices", name, patch
        )

    def get(self, namespace: str, name: str, plural: str = "inferenceservices") -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
        return obj

    def condition(
        self, namespace: str, name: str, type_: str = "Ready", plural: str = "inferenceservices"
    ) -> dict[str, Any]:
        try:
            obj = self.get(namespace, name, plural)
        except ApiException:
            return {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == type_:
                return dict(cond)
        return {}

    def wait_condition(
        self, namespace: str, name: str, *, status: str = "True", reason: str | None = None,
        type_: str = "Ready", timeout: float = 60, plural: str = "inferenceservices",
    ) -> dict[str, Any]:  # fmt: skip
        seen: dict[str, Any] = {}

        def matches() -> bool:
            nonlocal seen
            seen = self.condition(namespace, name, type_, plural)
            return seen.get("status") == status and (reason is None or seen.get("reason") == reason)

        try:
            wait_for(matches, timeout=timeout, what=f"{name} {type_}={status} {reason or ''}")
        except AssertionError as err:
            try:
                status = self.get(namespace, name, plural).get("status")
            except ApiException:
                status = None
            raise AssertionError(
                f"{err}; last seen: {json.dumps(seen)}; status: {json.dumps(status)}"
            ) from None
        return seen

    def events(self, namespace: str) -> list[client.CoreV1Event]:
        return list(self.core.list_namespaced_event(namespace).items)


_PORTS_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def operator_port() -> int:
    """A free port no other operator of this test process was given: `free_port` alone can
    return one port twice before either is bound, and test_rbac starts operators from
    several threads (one then failed to bind while its health check reached the other)."""
    with _PORTS_LOCK:
        while (port := free_port()) in _PORTS_HANDED_OUT:
            pass
        _PORTS_HANDED_OUT.add(port)
        return port


@dataclass
class OperatorProcess:
    """`python -m cloudinfer` as a child process, with its log captured to a file."""

    kubeconfig: Path
    log_path: Path
    args: tuple[str, ...] = ("--standalone",)
    allowed_endpoint_hosts: tuple[str, ...] = ("127.0.0.1",)
    """The simulators listen on loopback, outside the default (public) allow-list; empty:
    the operator's default."""
    process: subprocess.Popen[bytes] | None = None
    health_port: int = field(default_factory=operator_port)
    metrics_port: int = field(default_factory=operator_port)

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        env.pop("CLOUDINFER_K8S_BIN", None)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloudinfer", "--log-format", "text",
             "--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port),
             *(f"--allowed-endpoint-host={h}" for h in self.allowed_endpoint_hosts),
             *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        wait_for(self.healthy, timeout=60, what="the operator's liveness endpoint")

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited; log:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def writes(handle: CloudAccountHandle, action: str) -> list[dict[str, Any]]:
    """Successful write calls of `action` by one (per-test) account, from the sim's journal."""
    return [
        entry
        for entry in handle.sim.control.writes(action)
        if entry.get("account") == handle.name and entry.get("error_code") is None
    ]


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> None:
    wait_for(lambda: bool(check()), timeout=timeout, what=what or "the check")


def converged_service(
    kube: Kube, sim: RunningSim, provider: str, namespace: str, *, replicas: int = 2
) -> tuple[CloudAccountHandle, str]:
    """A fresh account with one service `chat` whose spec already matches the cloud."""
    handle = new_sim_account(sim, provider)
    service_id = handle.add_service(name="chat", replicas=replicas)
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "chat", {"serviceId": service_id, "replicas": replicas})
    kube.wait_condition(namespace, "chat", reason="Converged")
    return handle, service_id
