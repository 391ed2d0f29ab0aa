"""Recurring stop windows: is the service inside one now, and what is the next transition?

A window opens at each fire time of its `stop` cron and closes at the next fire time of its
`start` cron. Cron fire times are computed in the window's IANA time zone (cronsim handles
DST gaps and folds), then compared as absolute instants.
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


def _inside(window: StopWindow, local_now: datetime.datetime) -> bool:
    last_stop = _fire(window.stop, local_now, reverse=True)
    if last_stop is None:
        return False
    last_start = _fire(window.start, local_now, reverse=True)
    # Inside when the latest stop is more recent than the latest start.
    return last_start is None or last_stop > last_start


def evaluate(windows: list[StopWindow], time_zone: str, now: datetime.datetime) -> WindowState:
    """Where `now` falls relative to the windows, and the next flip of the run state."""
    if not windows:
        return WindowState(inside=False, next_transition=None)
    zone = _zone(time_zone)
    local_now = now.astimezone(zone)
    # A window edge exactly at `now` has already happened.
    inside = any(_inside(w, local_now + _EDGE) for w in windows)
    # The state can only flip at a stop or start fire time; walk candidates in order and
    # return the first one where the evaluated state differs from the current one.
    candidates: set[datetime.datetime] = set()
    for window in windows:
        cursor = local_now
        for _ in range(4):
            for expr in (window.stop, window.start):
                fire = _fire(expr, cursor, reverse=False)
                if fire is not None:
                    candidates.add(fire)
            later = [c for c in candidates if c > cursor]
            if not later:
                break
            cursor = min(later)
    for candidate in sorted(c for c in candidates if c > local_now):
        probe = candidate + _EDGE
        now_inside = any(_inside(w, probe) for w in windows)
        if now_inside != inside:
            action: Literal["Stop", "Start"] = "Stop" if now_inside else "Start"
            return WindowState(inside, Transition(action, candidate.astimezone(datetime.UTC)))
    return WindowState(inside=inside, next_transition=None)
