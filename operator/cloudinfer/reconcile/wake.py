"""The wake override: the `cloudinfer.dev/wake-until` annotation, read as of an instant.

While it is active the stop windows are ignored and the service runs at spec.replicas; an
expired or malformed value is ignored and reported (docs/schedules.md).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Literal

from cloudinfer.api.conditions import WAKE_UNTIL_ANNOTATION

# RFC 3339 date-time: an offset is required, "T" (or a space, RFC 3339 section 5.6 note).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_SHOWN = 64
"""Characters of a value quoted in status and messages."""

WakeState = Literal["Active", "Expired", "Invalid"]


@dataclass(frozen=True)
class Wake:
    value: str
    """The annotation's value, cut to 64 characters."""
    state: WakeState
    until: datetime.datetime | None

    @property
    def active(self) -> bool:
        return self.state == "Active"

    @property
    def problem(self) -> str | None:
        """Why it is ignored, for the Ready message and the event; None while active."""
        if self.state == "Invalid":
            return (
                f"{WAKE_UNTIL_ANNOTATION} {self.value!r} is not an RFC 3339 time with an offset "
                "(e.g. 2026-12-01T18:00:00Z); ignored"
            )
        if self.state == "Expired":
            return f"{WAKE_UNTIL_ANNOTATION} {self.value} has passed; ignored (remove it)"
        return None


def _parse(value: str) -> datetime.datetime | None:
    if not _RFC3339.match(value):
        return None
    try:
        return datetime.datetime.fromisoformat(value.upper())
    except ValueError:
        return None  # e.g. month 13: the shape matched but the date does not exist


def read_wake(value: str | None, now: datetime.datetime) -> Wake | None:
    """The override as of `now`, or None without the annotation."""
    if value is None:
        return None
    text = value.strip()
    until = _parse(text)
    shown = text[:_SHOWN]
    if until is None:
        return Wake(shown, "Invalid", None)
    until = until.astimezone(datetime.UTC)
    return Wake(shown, "Active" if now < until else "Expired", until)
