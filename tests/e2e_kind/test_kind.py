"""The install scenarios of the node tier (tests/operator/install_scenarios.py), in kind:
the image built by Docker, loaded into kind, installed with Helm and with plain YAML.

In kind the pods have a real pod network and kube-proxy, so the chart needs only the image;
the simulator runs as a pod and the test reaches it through a port-forward.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import Kube
from install_scenarios import SCENARIOS, InstallTarget
from kubernetes import config

from cloudsim.control import SimControl
from support import Cluster

SIM_PORT = 8400
SIM_NAMESPACE = "cloudsim"


@dataclass
class ForwardedSim:
    """What the harness needs of a simulator: its control API, reached through a port-forward."""

    base_url: str
    control: SimControl


def _simulator(kind: Any) -> str:
    manifest = {
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cloudsim"},
             "spec": {"selector": {"matchLabels": {"app": "cloudsim"}},
                      "template": {"metadata": {"labels": {"app": "cloudsim"}},
                                   "spec": {"containers": [{
                                       "name": "cloudsim", "image": "cloudinfer-cloudsim:e2e",
                                       "imagePullPolicy": "Never",
                                       "ports": [{"containerPort": SIM_PORT}]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cloudsim"},
             "spec": {"selector": {"app": "cloudsim"},
                      "ports": [{"port": SIM_PORT, "targetPort": SIM_PORT}]}},
        ],
    }  # fmt: skip
    kind.kubectl("create", "namespace", SIM_NAMESPACE)
    kind.kubectl("apply", "-n", SIM_NAMESPACE, "-f", "-", input=json.dumps(manifest))
    kind.kubectl("rollout", "status", "-n", SIM_NAMESPACE, "deployment/cloudsim", "--timeout=120s")
    return f"http://cloudsim.{SIM_NAMESPACE}.svc:{SIM_PORT}"


@pytest.fixture(scope="session")
def target(loaded: Any, helm_bin: Path) -> Iterator[InstallTarget]:
    kind = loaded
    in_cluster = _simulator(kind)
    api = config.new_client_from_config(config_file=str(kind.kubeconfig_path))
    kube = Kube(api, Cluster(kind.kubeconfig_path, kind.kubectl_path.parent, None))
    values = {
        "image.repository": "cloudinfer-operator",
        "image.tag": "e2e",
        "image.pullPolicy": "Never",
        # The simulator is the in-cluster Service cloudsim.cloudsim.svc.
        "allowedEndpointHosts": "{*.svc}",
    }

    def patch_install_yaml(deployment: dict[str, Any]) -> None:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["image"] = "cloudinfer-operator:e2e"
        container["imagePullPolicy"] = "Never"
        container["args"] = [
            *[a for a in container["args"] if not a.startswith("--allowed-endpoint-host=")],
            "--allowed-endpoint-host=*.svc",
        ]

    with kind.port_forward("service/cloudsim", SIM_PORT, "-n", SIM_NAMESPACE) as local_port:
        forwarded = f"http://127.0.0.1:{local_port}"
        sim = ForwardedSim(forwarded, SimControl(forwarded))
        yield InstallTarget(
            kube=kube,
            helm_bin=helm_bin,
            values=values,
            pod_network_values=values,
            sim=lambda _pod_network: (sim, in_cluster),  # type: ignore[arg-type,return-value]
            patch_install_yaml=patch_install_yaml,
        )
    api.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_install_scenario(target: InstallTarget, scenario: Callable[[InstallTarget], None]) -> None:
    scenario(target)
