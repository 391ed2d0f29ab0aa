"""The install paths on a real node: the image built from the Dockerfile, run by a kubelet."""

from __future__ import annotations

from install_scenarios import (
    InstallTarget,
    helm_install_converges,
    restricted_namespace_converges,
)


def test_helm_install_converges_then_uninstall_keeps_resources(target: InstallTarget) -> None:
    helm_install_converges(target)


def test_restricted_namespace_admits_and_converges(target: InstallTarget) -> None:
    restricted_namespace_converges(target)
