"""`wake`, `pause` and `resume`: the annotations the operator reads, each change said before it
is made."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudinfer.api.conditions import PAUSED_ANNOTATION, WAKE_UNTIL_ANNOTATION, Reason
from cloudinfer.kubectl.errors import ExitCode, PluginError
from cloudinfer.kubectl.planning import ready_condition
from cloudinfer.kubectl.text import age

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> datetime.timedelta:
    """2h, 90m, 1h30m, 1d: what --for takes."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise PluginError(
            ExitCode.USAGE, f"--for {text!r}: give a duration such as 2h, 90m or 1h30m"
        )
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= datetime.timedelta(0):
        raise PluginError(ExitCode.USAGE, "--for must be longer than 0")
    return duration


def parse_until(text: str, now: datetime.datetime) -> datetime.datetime:
    """An RFC 3339 time with an offset (Z or +08:00), in the future."""
    try:
        at = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise PluginError(
            ExitCode.USAGE,
            f"--until {text!r}: give an RFC 3339 time with an offset, e.g. 2030-01-02T18:00:00Z "
            "or 2030-01-02T18:00:00+08:00",
        )
    if at <= now:
        raise PluginError(ExitCode.USAGE, f"--until {text} is in the past")
    return at


def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AnnotationChange:
    """One annotation to set (value) or remove (None), and what it will do."""

    key: str
    old: str | None
    new: str | None
    effect: str

    @property
    def changes_anything(self) -> bool:
        return self.old != self.new


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations


def wake(
    obj: Mapping[str, Any], until: datetime.datetime | None, now: datetime.datetime
) -> AnnotationChange:
    """Set the wake override to `until`, or remove it (None)."""
    old = _annotations(obj).get(WAKE_UNTIL_ANNOTATION)
    spec = obj.get("spec") or {}
    schedule = spec.get("stopSchedule") or {}
    reason = ready_condition(obj.get("status") or {}).get("reason")
    if until is None:
        if old is None:
            return AnnotationChange(
                WAKE_UNTIL_ANNOTATION, None, None, "it is not awake by override"
            )
        effect = "its stop windows apply again at once"
        if reason == Reason.SCHEDULED_STOP.value or schedule.get("windows"):
            effect += " (inside a stop window it is stopped)"
        return AnnotationChange(WAKE_UNTIL_ANNOTATION, old, None, effect)
    value = rfc3339(until)
    effect = (
        f"the operator keeps it started until {value} (in {age((until - now).total_seconds())}), "
        "whatever its stop windows say; then they apply again"
    )
    if spec.get("suspend"):
        effect += "; spec.suspend is true, which a wake does not override"
    elif reason == Reason.SCHEDULED_STOP.value:
        effect += "; it is stopped by its schedule now, so it is started at once"
    elif not schedule.get("windows"):
        effect += "; it has no stop windows, so nothing changes now"
    return AnnotationChange(WAKE_UNTIL_ANNOTATION, old, value, effect)


def pause(obj: Mapping[str, Any]) -> AnnotationChange:
    old = _annotations(obj).get(PAUSED_ANNOTATION)
    if str(old).lower() == "true":
        return AnnotationChange(PAUSED_ANNOTATION, old, old, "it is already paused")
    return AnnotationChange(
        PAUSED_ANNOTATION, old, "true",
        "the operator makes no cloud write for it (it still observes; Ready says Paused and "
        "what it would send)",
    )  # fmt: skip


def resume(obj: Mapping[str, Any], would_send: str) -> AnnotationChange:
    old = _annotations(obj).get(PAUSED_ANNOTATION)
    if old is None:
        return AnnotationChange(PAUSED_ANNOTATION, None, None, "it is not paused")
    return AnnotationChange(
        PAUSED_ANNOTATION, old, None, f"the operator writes to the cloud again; {would_send}"
    )
