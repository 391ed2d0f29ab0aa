"""The install paths on a real node: the image built from the Dockerfile, run by a kubelet.

One node for the session, so order matters: install.yaml first, on the fresh cluster.
"""

from __future__ import annotations

from install_scenarios import (
    InstallTarget,
    ha_one_acts_and_hands_over,
    helm_upgrade_rolls_without_duplicate_write,
    install_yaml_converges,
    restricted_namespace_converges,
    sharded_replicas_split_accounts_and_hand_over,
)


def test_install_yaml_on_a_fresh_cluster_converges(target: InstallTarget) -> None:
    install_yaml_converges(target)


def test_helm_install_converges_upgrade_rolls_uninstall_keeps(target: InstallTarget) -> None:
    helm_upgrade_rolls_without_duplicate_write(target)


def test_restricted_namespace_admits_and_converges(target: InstallTarget) -> None:
    restricted_namespace_converges(target)


def test_two_replicas_one_acts_hands_over_and_stops_cleanly(target: InstallTarget) -> None:
    ha_one_acts_and_hands_over(target)


def test_three_sharded_replicas_split_accounts_and_hand_over(target: InstallTarget) -> None:
    sharded_replicas_split_accounts_and_hand_over(target)
