"""What `make test-soak` adds to the reliability suite, and how `make test` leaves it out.

A soak variant of a test carries the `soak` marker, written `pytest.mark.soak` in the test
modules (conftest.py imports this module before the marker is registered). Such tests are
*deselected*, never collected as skips, unless CLOUDINFER_SOAK=1, which `make test-soak` sets
together with `-m soak`, the way `make test-kind` sets CLOUDINFER_KIND=1 for the kind suite.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from hypothesis import HealthCheck, settings

SOAK_ENV = "CLOUDINFER_SOAK"
MARKER_HELP = "soak: long variants; deselected unless CLOUDINFER_SOAK=1 (`make test-soak`)"


def soak_enabled() -> bool:
    return os.environ.get(SOAK_ENV) == "1"


def hypothesis_settings(
    examples: int, *, soak: bool, suppress: Iterable[HealthCheck] = ()
) -> settings:
    """The in-suite runs are derandomized (the same examples every time, so `make test` is
    repeatable); soak runs draw fresh examples each time and print any falsifying one."""
    return settings(
        max_examples=examples, deadline=None, database=None, derandomize=not soak,
        suppress_health_check=list(suppress),
    )  # fmt: skip
