"""The user's install paths, in a real cluster: shared by the node tier (tests/node) and the
kind suite (tests/e2e_kind). Each scenario takes an `InstallTarget`, which says how this
cluster runs the image and how the operator in the pod reaches the apiserver and a simulator.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import CloudAccountHandle, Kube, new_sim_account, writes
from scenarios import SCALE_ACTION, core_scenario

from cloudsim.server import RunningSim
from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cloudinfer-operator"
RESTRICTED = "pod-security.kubernetes.io/enforce"


@dataclass
class InstallTarget:
    """A cluster that can run the operator image, as the scenarios need it."""

    kube: Kube
    helm_bin: Path
    # --set values beyond the chart's defaults: the image, pull policy, and how the pod
    # reaches the apiserver (host networking, extraEnv) on this cluster.
    values: dict[str, str]
    # The pod network variant (no hostNetwork), for namespaces under restricted PSS.
    pod_network_values: dict[str, str]
    # A simulator the test controls, and the endpoint the operator in the pod dials.
    sim: Callable[[bool], tuple[RunningSim, str]]
    extra_helm_args: tuple[str, ...] = field(default=())

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.kube.cluster.kubectl(*args, input_text=input_text).stdout

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.helm_bin), f"--kubeconfig={self.kube.cluster.kubeconfig}", *args],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout


def _set_args(values: dict[str, str]) -> list[str]:
    # extraEnv values are strings even when they look like numbers (a port).
    args = []
    for key, value in values.items():
        args += ["--set-string" if key.endswith(".value") else "--set", f"{key}={value}"]
    return args


def account_writes(handle: CloudAccountHandle) -> list[dict[str, Any]]:
    """Every write call (any action) by this account, from the simulator's journal."""
    journal = handle.sim.control.journal()
    return [
        entry
        for action in journal.values()
        for entry in action.get("writes", [])
        if entry.get("account") == handle.name
    ]


def operator_pods(target: InstallTarget, namespace: str) -> list[dict[str, Any]]:
    out = target.kubectl(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=cloudinfer-operator",
        "-o", "json",
    )  # fmt: skip
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def _diagnose(target: InstallTarget, namespace: str) -> str:
    described = target.kube.cluster.kubectl("describe", "pods", "-n", namespace, check=False)
    logs = target.kube.cluster.kubectl(
        "logs", "-n", namespace, "-l", "app.kubernetes.io/name=cloudinfer-operator",
        "--tail=40", "--all-containers", check=False,
    )  # fmt: skip
    return f"{described.stdout[-3000:]}\n--- logs ---\n{logs.stdout}{logs.stderr}"


def wait_available(target: InstallTarget, namespace: str) -> dict[str, Any]:
    """The release's Deployment Available and its pods Ready (the readiness probe passed)."""
    deployment = target.kubectl("get", "deployments", "-n", namespace, "-o", "name").split()
    assert len(deployment) == 1, deployment
    deployment = deployment[0].removeprefix("deployment.apps/")
    try:
        target.kubectl(
            "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=100s"
        )
        target.kubectl(
            "wait", "-n", namespace, "--for=condition=Available", "--timeout=60s",
            f"deployment/{deployment}",
        )  # fmt: skip
    except AssertionError as err:
        raise AssertionError(f"{err}\n{_diagnose(target, namespace)}") from None
    pods = operator_pods(target, namespace)
    assert pods, "no operator pod"
    for pod in pods:
        ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", pod["status"]
    return pods[0]


def assert_no_restarts(target: InstallTarget, namespace: str) -> None:
    """The kubelet's liveness probe passed: no container was restarted."""
    for pod in operator_pods(target, namespace):
        restarts = [s["restartCount"] for s in pod["status"].get("containerStatuses", [])]
        assert restarts == [0] * len(restarts), _diagnose(target, namespace)


def converge_in(target: InstallTarget, namespace: str, *, pod_network: bool) -> CloudAccountHandle:
    """The operator in the pod converges a service on the simulator (core scenario)."""
    sim, endpoint = target.sim(pod_network)
    handle = new_sim_account(sim, "huawei")
    target.kube.core.create_namespace(
        {"metadata": {"name": namespace}}  # type: ignore[arg-type]
    )
    core_scenario(target.kube, handle, namespace, endpoint=endpoint)
    return handle


def helm_install(
    target: InstallTarget, release: str, namespace: str, *, pod_network: bool = False,
    extra: dict[str, str] | None = None, create_namespace: bool = True,
) -> None:  # fmt: skip
    values = {**(target.pod_network_values if pod_network else target.values), **(extra or {})}
    target.helm(
        "install", release, str(CHART), "--namespace", namespace,
        *(["--create-namespace"] if create_namespace else []), *_set_args(values),
        *target.extra_helm_args,
    )  # fmt: skip


def helm_install_converges(target: InstallTarget) -> None:
    """`helm install` with the defaults except image, pull policy and network; the pod is
    Available with its probes passing and converges a service. `helm uninstall` then leaves
    the CRDs, the InferenceService and the cloud service alone."""
    helm_install(target, "cloudinfer", "cloudinfer-system")
    wait_available(target, "cloudinfer-system")
    handle = converge_in(target, "helm-default", pod_network=False)
    assert_no_restarts(target, "cloudinfer-system")

    scale_writes = len(writes(handle, SCALE_ACTION[handle.provider]))
    journal_before = len(account_writes(handle))
    target.helm("uninstall", "cloudinfer", "--namespace", "cloudinfer-system", "--wait")
    wait_for(lambda: not operator_pods(target, "cloudinfer-system"), timeout=120,
             what="the operator pod gone after helm uninstall")  # fmt: skip
    crds = target.kubectl("get", "crd", "-o", "name")
    for crd in ("inferenceservices.cloudinfer.dev", "cloudaccounts.cloudinfer.dev"):
        assert crd in crds, crds
    service = target.kube.get("helm-default", "core")
    assert service["spec"]["replicas"] == 3
    assert len(writes(handle, SCALE_ACTION[handle.provider])) == scale_writes
    assert len(account_writes(handle)) == journal_before, "uninstall wrote to the cloud"


def restricted_namespace_converges(target: InstallTarget) -> None:
    """Under `restricted` PodSecurity the pod is admitted (no hostNetwork: the pod network)
    and converges a service."""
    namespace = "cloudinfer-restricted"
    target.kube.core.create_namespace(
        {"metadata": {"name": namespace, "labels": {RESTRICTED: "restricted"}}}  # type: ignore[arg-type]
    )
    helm_install(target, "restricted", namespace, pod_network=True, create_namespace=False)
    wait_available(target, namespace)
    converge_in(target, "restricted-services", pod_network=True)
    assert_no_restarts(target, namespace)
    target.helm("uninstall", "restricted", "--namespace", namespace, "--wait")
