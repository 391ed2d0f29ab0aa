"""Paths and helpers shared by the packaging tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Protocol

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cloudinfer-operator"
ARGOCD = REPO / "argocd"
HEALTH_DIR = ARGOCD / "resource_customizations" / "cloudinfer.dev"
KINDS = ("InferenceService", "CloudAccount")
# hack/build-k8s.sh builds helm without release ldflags, so it assumes Kubernetes v1.20;
# render for the version the local control plane runs.
KUBE_VERSION = "1.37.2"


class Helm(Protocol):
    def __call__(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def template_args(*values: str, release: str = "cio", namespace: str = "cio-system") -> list[str]:
    """`helm template` arguments for the chart with `--set` values."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    for value in values:
        args += ["--set", value]
    return args


def render(helm: Helm, *values: str, **kwargs: str) -> list[dict[str, Any]]:
    """The chart's rendered objects (CRDs only when templated) for these `--set` values."""
    out = helm(*template_args(*values, **kwargs)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
