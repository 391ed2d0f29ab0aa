"""Session-wide real Kubernetes control plane, a fresh namespace per test, and API clients.

The control plane is started once per run, lazily: tests that don't ask for it (pure
unit tests) never pay for it. Set CLOUDINFER_KUBECONFIG to reuse a running cluster
(e.g. one from `make cluster`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from controlplane import ControlPlane, find_bin_dir
from support import Cluster

EXISTING_KUBECONFIG_ENV = "CLOUDINFER_KUBECONFIG"
# The kind suite needs Docker; `make test-kind` sets CLOUDINFER_KIND=1 to collect it. The live
# suite needs real cloud accounts; `make test-live` sets CLOUDINFER_LIVE=1. `make test` never
# collects either. The node tier (a real kubelet) runs in `make test-node`, which `make test`
# runs after the rest: CLOUDINFER_NODE=1.
collect_ignore = [
    *([] if os.environ.get("CLOUDINFER_KIND") == "1" else ["e2e_kind"]),
    *([] if os.environ.get("CLOUDINFER_NODE") == "1" else ["node"]),
    *([] if os.environ.get("CLOUDINFER_LIVE") == "1" else ["live"]),
]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bin_dir = find_bin_dir()
    existing = os.environ.get(EXISTING_KUBECONFIG_ENV)
    if existing:
        yield Cluster(Path(existing), bin_dir, None)
        return
    work_dir = tmp_path_factory.mktemp("controlplane")
    with ControlPlane(bin_dir=bin_dir, work_dir=work_dir) as plane:
        yield Cluster(plane.kubeconfig, bin_dir, plane)


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core_v1.delete_namespace(name)


CRDS_DIR = Path(__file__).resolve().parents[1] / "crds"


@pytest.fixture(scope="session")
def cloudinfer_crds(cluster: Cluster) -> Path:
    """The generated CRDs, applied once per run and established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR))
    return CRDS_DIR
