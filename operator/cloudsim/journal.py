"""The call journal: per-action counters, timestamps, and every write call's parameters."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

# Entries kept per action; old ones fall off so a long demo cannot grow without bound.
MAX_ENTRIES_PER_ACTION = 20_000
# Fields that only `writes` carries; `entries` lists every call without them.
_WRITE_ONLY = frozenset({"params", "path_params"})


@dataclass
class JournalEntry:
    """One API call as the simulator saw it."""

    action: str
    time: float  # virtual epoch seconds
    request_id: str
    account: str
    http_status: int
    error_code: str | None
    throttled: bool
    write: bool
    params: dict[str, Any] | None  # request parameters, kept for write calls only
    # Parameters carried in the URL path, kept for write calls only: ModelArts names the
    # project and the service there ({"pid": ..., "sid": ...}), not in the body.
    path_params: dict[str, str] | None = None
    client: str = ""
    """The caller's User-Agent: the operator names its replica there in sharding mode."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _ActionLog:
    calls: int = 0
    throttled: int = 0
    errors: int = 0
    entries: deque[JournalEntry] = field(
        default_factory=lambda: deque(maxlen=MAX_ENTRIES_PER_ACTION)
    )


class Journal:
    """Records calls; `summary()` is what `GET /_sim/journal` returns."""

    def __init__(self) -> None:
        self._logs: dict[str, _ActionLog] = {}

    def record(self, entry: JournalEntry) -> None:
        log = self._logs.get(entry.action)
        if log is None:
            log = self._logs[entry.action] = _ActionLog()
        log.calls += 1
        if entry.throttled:
            log.throttled += 1
        elif entry.error_code is not None:
            log.errors += 1
        log.entries.append(entry)

    def summary(self, action: str | None = None, *, entries: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, log in self._logs.items():
            if action is not None and name != action:
                continue
            item: dict[str, Any] = {
                "calls": log.calls,
                "throttled": log.throttled,
                "errors": log.errors,
                "timestamps": [e.time for e in log.entries],
            }
            if entries:
                item["writes"] = [e.to_json() for e in log.entries if e.write]
                item["entries"] = [
                    {k: v for k, v in e.to_json().items() if k not in _WRITE_ONLY}
                    for e in log.entries
                ]
            out[name] = item
        return out

    def clear(self) -> None:
        self._logs.clear()
