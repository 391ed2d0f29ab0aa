"""The install paths on a real node: the image built from the Dockerfile, run by a kubelet.

One node for the session, so order matters: install.yaml first, on the fresh cluster.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from install_scenarios import SCENARIOS, InstallTarget


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_install_scenario(target: InstallTarget, scenario: Callable[[InstallTarget], None]) -> None:
    scenario(target)
