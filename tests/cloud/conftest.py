"""Fixtures for the cloud-layer tests."""

from __future__ import annotations

import pytest
from virtual_clock import VirtualClock


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """A fresh virtual clock: time moves only when every task waits on it."""
    return VirtualClock()
