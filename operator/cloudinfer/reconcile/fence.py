"""The write fence of sharding mode: a replica calls the cloud for an account only while it
holds the account's Lease (cloudinfer/main/sharding.py; docs/architecture.md, "Sharding")."""

from __future__ import annotations

import time
from typing import Protocol

from cloudinfer.reconcile.kube_access import Key


class NotHolder(Exception):
    """This replica does not hold the account (any more): nothing was sent."""


class WriteFence(Protocol):
    def write_window(self, account: Key) -> tuple[float, float] | None:
        """(send before, answered by), time.monotonic() instants, while this replica holds
        `account`; None otherwise."""
        ...


def answer_deadline(fence: WriteFence, account: Key) -> float:
    """The instant a call sent now must be answered by; raises NotHolder if none may be
    sent now."""
    window = fence.write_window(account)
    if window is None or time.monotonic() >= window[0]:
        raise NotHolder(f"this replica does not hold CloudAccount {account[0]}/{account[1]}")
    return window[1]
