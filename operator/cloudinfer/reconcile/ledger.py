"""The write ledger: `status.journal` as typed entries, one per cloud write call.

Each entry says which field was written, how (the change's kind), to what value, when the
call returned (milliseconds), the cloud's request ID, the result and, for a refusal, the
error class, the message and when the same change may be tried again. The planner reads
entries as data (the duplicate-write guard, the retry and hold policy); the human `change`
text is written from them and never read back. The ledger lives in status, so it survives
an operator restart.

One call may change several fields (a TI-ONE PartialConfig sets the RPS limit and the
scheduled stop together): its entry names the first in `field`/`kind` and every one in
`kinds`; the guards read it as a write of each of those fields. Entries without `kinds`
(every entry before that, and any single-field write) change one field.

Journals written before the ledger was typed (human text only) are read once by
`legacy_entry` and written back in the typed form at the next status write.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloudinfer.api.inferenceservice import JOURNAL_MAX_ENTRIES
from cloudinfer.cloud.model import (
    Change,
    Combined,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
)

JsonDict = dict[str, Any]
FIELD_BY_KIND = {
    "scale": ServiceField.REPLICAS,
    "set-rate-limit": ServiceField.RATE_LIMIT,
    "clear-rate-limit": ServiceField.RATE_LIMIT,
    "set-schedule": ServiceField.SCHEDULE,
    "clear-schedule": ServiceField.SCHEDULE,
    "stop": ServiceField.STOP,
    "resume": ServiceField.RESUME,
}
LEGACY_RETRY_DELAY = datetime.timedelta(seconds=15)
"""A refusal recorded before the ledger was typed was retried this long after it (the old
fixed backoff); read back, it keeps that retry time."""


@dataclass(frozen=True)
class Target:
    """The value a write set; empty for a clear, a stop or a resume."""

    replicas: int | None = None
    requests_per_second: float | None = None
    scope: str | None = None
    """PerInstance or PerService, as in the spec."""
    stop_at: datetime.datetime | None = None

    def of(self, target: ServiceField) -> Target:
        """Only the part of this value that belongs to `target` (a write of several fields
        holds each field's value)."""
        if target is ServiceField.REPLICAS:
            return Target(replicas=self.replicas)
        if target is ServiceField.RATE_LIMIT:
            return Target(requests_per_second=self.requests_per_second, scope=self.scope)
        if target is ServiceField.SCHEDULE:
            return Target(stop_at=self.stop_at)
        return Target()


@dataclass(frozen=True)
class LedgerEntry:
    """One cloud write call."""

    at: datetime.datetime
    """When the call returned (the duplicate-write guard compares it with observations)."""
    field: ServiceField
    """The (first) field written."""
    kind: str
    """The change's kind: scale, set-rate-limit, clear-rate-limit, set-schedule, ..."""
    target: Target = dataclasses.field(default_factory=Target)
    succeeded: bool = True
    action: str = ""
    """The cloud API action called."""
    why: str = ""
    """The planner's reason, for people (e.g. "replicas 2 -> 3")."""
    note: str | None = None
    """What the provider wants people to know (e.g. a fallback call)."""
    request_id: str | None = None
    error_class: str | None = None
    """For a refusal: the cloud error class's reason (e.g. CloudInvalidRequest)."""
    error: str | None = None
    """For a refusal: the cloud's message."""
    generation: int | None = None
    """The resource's metadata.generation the change was planned from."""
    account: str | None = None
    """The account fingerprint at the call (CloudAccount uid and generation, Secret
    resourceVersion): a hold lasts only while it is the same."""
    retry_at: datetime.datetime | None = None
    """For a refusal to retry: not before this instant."""
    also: tuple[str, ...] = ()
    """The kinds of the other fields the same call changed, if it changed several."""

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind, *self.also)

    @property
    def fields(self) -> tuple[ServiceField, ...]:
        """Every field the call changed."""
        return (self.field, *(FIELD_BY_KIND[kind] for kind in self.also))

    def wrote(self, target: ServiceField) -> bool:
        return target in self.fields

    def kind_of(self, target: ServiceField) -> str | None:
        """The kind of change the call made to `target`; None if it did not write it."""
        return next((k for k in self.kinds if FIELD_BY_KIND[k] is target), None)

    @property
    def change(self) -> str:
        """The human text of status.journal[].change. Written, never parsed."""
        note = f" ({self.note})" if self.note else ""
        return f"{_label(self.kinds)}: {self.why}{note}"


def entry_of(change: Change, *, at: datetime.datetime, **details: Any) -> LedgerEntry:  # noqa: ANN401
    """The ledger entry of the call that made `change` (`details`: the other fields)."""
    kinds = kinds_of(change)
    return LedgerEntry(
        at=at,
        field=change.fields[0],
        kind=kinds[0],
        also=kinds[1:],
        target=target_of(change),
        **details,
    )


def describe(change: Change) -> str:
    """A write for people: its kinds and the planner's reason."""
    return f"{_label(kinds_of(change))}: {change.reason}"


def _label(kinds: tuple[str, ...]) -> str:
    return " + ".join(kinds)


def kinds_of(change: Change) -> tuple[str, ...]:
    """The kind of each field change a write makes, in order."""
    if isinstance(change, Combined):
        return tuple(part.kind for part in change.parts)
    return (change.kind,)


def target_of(change: Change) -> Target:
    if isinstance(change, Combined):
        merged: dict[str, Any] = {}
        for part in change.parts:
            merged.update(
                {k: v for k, v in dataclasses.asdict(target_of(part)).items() if v is not None}
            )
        return Target(**merged)
    if isinstance(change, Scale):
        return Target(replicas=change.replicas)
    if isinstance(change, SetRateLimit):
        return Target(requests_per_second=change.rps, scope=change.scope.value)
    if isinstance(change, SetSchedule):
        return Target(stop_at=_to_millisecond(change.stop_at))
    return Target()


JOURNAL_STAMPS_CACHED: Final = 4096
"""Formatted journal times kept: each status write formats the whole journal again."""


def _to_millisecond(when: datetime.datetime) -> datetime.datetime:
    """Status keeps milliseconds: a value read back must equal the value written."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


@functools.lru_cache(maxsize=JOURNAL_STAMPS_CACHED)
def precise_timestamp(when: datetime.datetime) -> str:
    """Milliseconds matter in the journal: the duplicate-write guard compares write times
    with observation times. Cached: each status write formats every entry of the journal
    again (17 calls per cloud write at N = 10,000)."""
    utc = when.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_status(entry: LedgerEntry) -> JsonDict:
    """The entry as status.journal stores it (api/inferenceservice.py, JournalEntry)."""
    raw: JsonDict = {
        "time": precise_timestamp(entry.at),
        "action": (entry.action or entry.kind)[:128],
        "change": entry.change[:512],
        "result": "Succeeded" if entry.succeeded else "Failed",
        "field": entry.field.value,
        "kind": entry.kind,
    }
    if entry.also:
        raw["kinds"] = list(entry.kinds)
    target = _target_to_status(entry.target)
    optional: JsonDict = {
        "target": target or None,
        "requestId": entry.request_id[:256] if entry.request_id else None,
        "errorClass": entry.error_class,
        "error": entry.error[:512] if entry.error else None,
        "generation": entry.generation,
        "account": entry.account,
        "retryAt": precise_timestamp(entry.retry_at) if entry.retry_at else None,
    }
    raw.update({key: value for key, value in optional.items() if value is not None})
    return raw


def _target_to_status(target: Target) -> JsonDict:
    raw: JsonDict = {
        "replicas": target.replicas,
        "requestsPerSecond": target.requests_per_second,
        "scope": target.scope,
        "stopAt": precise_timestamp(target.stop_at) if target.stop_at else None,
    }
    return {key: value for key, value in raw.items() if value is not None}


def _time(value: Any) -> datetime.datetime | None:  # noqa: ANN401 - a JSON value
    try:
        return datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def from_status(raw: Mapping[str, Any]) -> LedgerEntry | None:
    """One status.journal entry, typed; None for an entry that names no known write."""
    if "kind" not in raw:
        return legacy_entry(raw)
    at = _time(raw.get("time"))
    kind = str(raw.get("kind"))
    kinds = tuple(str(k) for k in raw.get("kinds") or [kind])
    if at is None or kinds[0] != kind or not all(k in FIELD_BY_KIND for k in kinds):
        return None
    target = raw.get("target") or {}
    stop_at = _time(target["stopAt"]) if "stopAt" in target else None
    return LedgerEntry(
        at=at,
        field=FIELD_BY_KIND[kind],
        kind=kind,
        target=Target(
            replicas=target.get("replicas"),
            requests_per_second=target.get("requestsPerSecond"),
            scope=target.get("scope"),
            stop_at=stop_at,
        ),
        succeeded=raw.get("result") == "Succeeded",
        action=str(raw.get("action", "")),
        why=_why(str(raw.get("change", "")), kinds),
        request_id=raw.get("requestId"),
        error_class=raw.get("errorClass"),
        error=raw.get("error"),
        generation=raw.get("generation"),
        account=raw.get("account"),
        retry_at=_time(raw["retryAt"]) if "retryAt" in raw else None,
        also=kinds[1:],
    )


def _why(change: str, kinds: tuple[str, ...]) -> str:
    """The reason text back from a stored change text, so that an entry written back is
    unchanged. Only for showing it again: no decision reads it."""
    return change.removeprefix(f"{_label(kinds)}: ")


def legacy_entry(raw: Mapping[str, Any]) -> LedgerEntry | None:
    """An entry written before the ledger was typed: the kind was the first word of the
    change text, and a schedule write ended in "-> <stop time>". Only such old entries are
    parsed; they are written back typed."""
    at = _time(raw.get("time"))
    change = str(raw.get("change", ""))
    kind = change.split(":", 1)[0]
    if at is None or kind not in FIELD_BY_KIND:
        return None
    stop_at = None
    if kind == "set-schedule" and "-> " in change:
        stop_at = _time(change.rsplit("-> ", 1)[1].split(" ", 1)[0])
    succeeded = raw.get("result") == "Succeeded"
    return LedgerEntry(
        at=at,
        field=FIELD_BY_KIND[kind],
        kind=kind,
        target=Target(stop_at=stop_at),
        succeeded=succeeded,
        action=str(raw.get("action", "")),
        why=_why(change, (kind,)),
        request_id=raw.get("requestId"),
        retry_at=None if succeeded else at + LEGACY_RETRY_DELAY,
    )


def read(journal: Sequence[Mapping[str, Any]]) -> tuple[LedgerEntry, ...]:
    """status.journal as typed entries, oldest first."""
    entries = (from_status(raw) for raw in journal)
    return tuple(entry for entry in entries if entry is not None)


def bounded(entries: Sequence[LedgerEntry]) -> tuple[LedgerEntry, ...]:
    """At most JOURNAL_MAX_ENTRIES entries, oldest first. The oldest go first, except that
    the last entry of each field stays: it is what the duplicate-write guard and a hold
    read (five fields, so the bound always leaves room for them)."""
    if len(entries) <= JOURNAL_MAX_ENTRIES:
        return tuple(entries)
    last_of_field = {
        written: index for index, entry in enumerate(entries) for written in entry.fields
    }
    keep = set(last_of_field.values())
    for index in range(len(entries) - 1, -1, -1):
        if len(keep) >= JOURNAL_MAX_ENTRIES:
            break
        keep.add(index)
    return tuple(entry for index, entry in enumerate(entries) if index in keep)


def refusals_in_a_row(entries: Sequence[LedgerEntry], target: ServiceField) -> int:
    """How many of `target`'s latest writes were refused, since its last success."""
    count = 0
    for entry in reversed(entries):
        if entry.wrote(target):
            if entry.succeeded:
                break
            count += 1
    return count
