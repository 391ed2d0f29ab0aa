"""The core scenario, in-cluster: image built, loaded into kind, installed with Helm."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from harness import Kube, new_sim_account
from kubernetes import client, config
from scenarios import core_scenario

from cloudsim.control import SimControl
from support import Cluster

SIM_PORT = 8400


@dataclass
class ForwardedSim:
    """What the harness needs of a simulator: its control API, reached through a port-forward."""

    base_url: str
    control: SimControl


def _simulator(kind: Any, namespace: str) -> str:
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
    kind.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    kind.kubectl("rollout", "status", "-n", namespace, "deployment/cloudsim", "--timeout=120s")
    return f"http://cloudsim.{namespace}.svc:{SIM_PORT}"


def test_core_scenario_in_cluster(installed: Any) -> None:
    kind = installed
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    kind.kubectl("create", "namespace", namespace)
    in_cluster = _simulator(kind, namespace)
    api = config.new_client_from_config(config_file=str(kind.kubeconfig_path))
    kube = Kube(api, Cluster(kind.kubeconfig_path, kind.kubectl_path.parent, None))
    kube.core = client.CoreV1Api(api)
    with kind.port_forward("service/cloudsim", SIM_PORT, "-n", namespace) as local_port:
        forwarded = f"http://127.0.0.1:{local_port}"
        sim = ForwardedSim(forwarded, SimControl(forwarded))
        handle = new_sim_account(sim, "huawei")  # type: ignore[arg-type]
        core_scenario(kube, handle, namespace, endpoint=in_cluster)
