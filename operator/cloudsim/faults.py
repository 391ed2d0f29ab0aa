"""Fault injection rules, chosen per action by count or probability."""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    ERROR = "error"  # the cloud's own error envelope with `code`/`message`/`http_status`
    LATENCY = "latency"  # sleep `latency` seconds, then answer normally
    RESET = "reset"  # drop the TCP connection (RST) without answering
    HANG = "hang"  # never answer (until `latency` seconds pass, default an hour)
    MALFORMED = "malformed"  # HTTP 200 with a truncated JSON body
    HTML = "html"  # an HTML error page, as a load balancer in front of the API would send
    # `size` bytes (default 11 MiB): a JSON document opened and padded but never closed
    # (HTTP 200 unless `http_status`), or with `http_status` >= 400 an HTML error page padded
    # to that size, as a gateway in front of a runaway backend would send.
    OVERSIZED = "oversized"


# How long a "hang" lasts when no latency is given: longer than any sane client timeout.
DEFAULT_HANG_SECONDS = 3600.0
# How big an "oversized" body is when no size is given: over the 10 MB issue 10 names.
DEFAULT_OVERSIZED_BYTES = 11 * 1024 * 1024


@dataclass
class Fault:
    """One injection rule. `action="*"` matches every action of the cloud."""

    id: int
    action: str
    kind: FaultKind
    code: str = "InternalError"
    message: str = "injected fault"
    http_status: int | None = None  # None: the cloud's usual status for `code`
    latency: float = 0.0  # real seconds (latency, hang)
    count: int | None = None  # remaining firings; None = unlimited
    probability: float = 1.0
    account: str | None = None  # only calls from this account, if set
    size: int = DEFAULT_OVERSIZED_BYTES  # body bytes (oversized)
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        return out


_FAULT_FIELDS = {
    "action",
    "kind",
    "code",
    "message",
    "http_status",
    "latency",
    "count",
    "probability",
    "account",
    "size",
}


class FaultInjector:
    """Holds rules; `pick` returns the first live rule that fires for a call (or None)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids = itertools.count(1)
        self.rules: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        unknown = set(spec) - _FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "action" not in spec or "kind" not in spec:
            raise ValueError("a fault needs `action` and `kind`")
        fault = Fault(
            id=next(self._ids),
            action=str(spec["action"]),
            kind=FaultKind(spec["kind"]),
            code=str(spec.get("code", "InternalError")),
            message=str(spec.get("message", "injected fault")),
            http_status=None if spec.get("http_status") is None else int(spec["http_status"]),
            latency=float(spec.get("latency", 0.0)),
            count=None if spec.get("count") is None else int(spec["count"]),
            probability=float(spec.get("probability", 1.0)),
            account=None if spec.get("account") is None else str(spec["account"]),
            size=int(spec.get("size", DEFAULT_OVERSIZED_BYTES)),
        )
        if not 0.0 <= fault.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if fault.count is not None and fault.count < 1:
            raise ValueError("count must be >= 1")
        if fault.size < 0:
            raise ValueError("size must be >= 0")
        self.rules.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self.rules)
        self.rules = [f for f in self.rules if f.id != fault_id]
        return len(self.rules) != before

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, action: str, account: str) -> Fault | None:
        for fault in self.rules:
            if fault.action not in ("*", action):
                continue
            if fault.account is not None and fault.account != account:
                continue
            if fault.count is not None and fault.fired >= fault.count:
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            fault.fired += 1
            return fault
        return None
