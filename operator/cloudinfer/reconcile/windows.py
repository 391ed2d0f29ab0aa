"""Recurring stop windows: is the service inside one now, and what is the next transition?

A window opens at each fire time of its `stop` cron and closes at the next fire time of its
`start` cron. Cron fire times are computed in the window's IANA time zone, as Debian cron
does (through cronsim): a time the spring-forward gap skips fires at the end of the gap, and a
time the fall-back fold repeats fires once, in its first pass. They are compared as UTC
instants. `tests/reconcile/test_windows.py` has the cases.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cloudinfer.api.inferenceservice import StopWindow

_EDGE = datetime.timedelta(seconds=1)


class InvalidWindowError(ValueError):
    """A window the schema accepted but that cannot be evaluated (e.g. minute 61)."""


@dataclass(frozen=True)
class Transition:
    action: Literal["Stop", "Start"]
    at: datetime.datetime


@dataclass(frozen=True)
class WindowState:
    inside: bool
    """True when at least one window is open at `now`."""
    next_transition: Transition | None
    """The next instant the desired run state flips, or None if it never does."""


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidWindowError(f"unknown time zone {name!r}") from err


def _fire(expr: str, local_now: datetime.datetime, *, reverse: bool) -> datetime.datetime | None:
    try:
        return next(CronSim(expr, local_now, reverse=reverse))
    except CronSimError as err:
        raise InvalidWindowError(f"cron expression {expr!r}: {err}") from err
    except StopIteration:
        return None


def _next_fire(expr: str, instant: datetime.datetime, zone: ZoneInfo) -> datetime.datetime | None:
    """The first fire time strictly after `instant`, in UTC.

    cronsim walks wall-clock time, so from the second pass of a repeated hour it can return a
    fire from the first pass, which is already past; such fires are skipped.
    """
    cursor = instant.astimezone(zone)
    while (fire := _fire(expr, cursor, reverse=False)) is not None:
        if fire.astimezone(datetime.UTC) > instant:
            return fire.astimezone(datetime.UTC)
        cursor = fire
    return None


def _last_fire(expr: str, instant: datetime.datetime, zone: ZoneInfo) -> datetime.datetime | None:
    """The latest fire time strictly before `instant`, in UTC.

    In the second pass of a repeated hour, a fire later on the wall clock (first pass) may
    already have happened, and cronsim's reverse walk does not see it; look forward for it.
    """
    fire = _fire(expr, instant.astimezone(zone), reverse=True)
    if fire is None:
        return None
    latest = fire.astimezone(datetime.UTC)
    while (later := _fire(expr, fire, reverse=False)) is not None:
        if later.astimezone(datetime.UTC) >= instant:
            break
        latest = max(latest, later.astimezone(datetime.UTC))
        fire = later
    return latest


def _inside(window: StopWindow, instant: datetime.datetime, zone: ZoneInfo) -> bool:
    last_stop = _last_fire(window.stop, instant, zone)
    if last_stop is None:
        return False
    last_start = _last_fire(window.start, instant, zone)
    # Inside when the latest stop is more recent than the latest start.
    return last_start is None or last_stop > last_start


def evaluate(windows: list[StopWindow], time_zone: str, now: datetime.datetime) -> WindowState:
    """Where `now` falls relative to the windows, and the next flip of the run state."""
    if not windows:
        return WindowState(inside=False, next_transition=None)
    zone = _zone(time_zone)
    # Instants are compared in UTC: aware times in one zone compare by wall clock, ignoring
    # the fold, so the two passes of a repeated hour would be confused.
    now = now.astimezone(datetime.UTC)
    # A window edge exactly at `now` has already happened.
    inside = any(_inside(w, now + _EDGE, zone) for w in windows)
    # The state can only flip at a stop or start fire time; walk candidates in order and
    # return the first one where the evaluated state differs from the current one.
    candidates: set[datetime.datetime] = set()
    for window in windows:
        cursor = now
        for _ in range(4):
            for expr in (window.stop, window.start):
                fire = _next_fire(expr, cursor, zone)
                if fire is not None:
                    candidates.add(fire)
            later = [c for c in candidates if c > cursor]
            if not later:
                break
            cursor = min(later)
    for candidate in sorted(c for c in candidates if c > now):
        now_inside = any(_inside(w, candidate + _EDGE, zone) for w in windows)
        if now_inside != inside:
            action: Literal["Stop", "Start"] = "Stop" if now_inside else "Start"
            return WindowState(inside, Transition(action, candidate))
    return WindowState(inside=inside, next_transition=None)
