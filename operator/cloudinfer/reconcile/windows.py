"""Recurring stop windows: the replicas they ask for now, and the next transitions.

A window opens at each fire time of its `stop` cron and closes at the next fire time of its
`start` cron. While it is open the service is stopped, or runs the window's `replicas` (a
tier); where windows overlap the lowest count wins. A stop fire on a skip date (a local date
of the schedule's zone) does not open the window; a window that opened before closes as
scheduled. A wake override keeps the service at spec.replicas until its end.

Cron fire times are computed in the window's IANA time zone, as Debian cron does (through
cronsim): a time the spring-forward gap skips fires at the end of the gap, and a time the
fall-back fold repeats fires once, in its first pass. They are compared as UTC instants.
`tests/reconcile/test_windows.py` has the cases; docs/schedules.md explains the rules.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cloudinfer.api.inferenceservice import NEXT_TRANSITIONS, StopWindow, parse_skip_date

_EDGE = datetime.timedelta(microseconds=1)
"""An edge exactly at an instant has happened by it; one a fraction of a second later has not
(cron fires on whole seconds)."""
MAX_CANDIDATES = 400
"""Fire times examined when looking for the next transitions. Past them (a skip range of a
year over a minutely window, say) the search stops and the reconciler re-plans at the last
one examined (`WindowState.horizon`) instead of spending seconds of CPU now."""

Action = Literal["Stop", "Start", "Scale"]
Level = int | None
"""What the windows ask for at an instant: None when no window is open (spec.replicas), 0
when stopped, n > 0 for a tier of n replicas."""


class InvalidWindowError(ValueError):
    """A window the schema accepted but that cannot be evaluated (e.g. minute 61)."""


@dataclass(frozen=True)
class Transition:
    action: Action
    at: datetime.datetime
    replicas: int | None = None
    """The replicas after it: 0 for Stop; None when spec.replicas is unset."""


@dataclass(frozen=True)
class WindowState:
    inside: bool
    """True when the windows stop the service at `now` (the level is 0)."""
    next_transition: Transition | None
    """The next instant the desired replicas or run state change, or None if they never do
    (or not within the candidates examined: see `horizon`)."""
    level: Level = None
    """What the windows ask for at `now` (after the wake override)."""
    transitions: tuple[Transition, ...] = ()
    """The next transitions, soonest first (at most NEXT_TRANSITIONS)."""
    horizon: datetime.datetime | None = None
    """Set when the search stopped before finding them all: re-evaluate at this instant."""


@dataclass(frozen=True)
class Schedule:
    """What evaluation needs besides the instant."""

    windows: tuple[StopWindow, ...]
    zone: ZoneInfo
    skip: SkipDates
    full_replicas: int | None = None
    """spec.replicas: what the service runs outside windows (None: not managed)."""
    awake_until: datetime.datetime | None = None
    """An active wake override: windows are ignored before this instant."""


class SkipDates:
    """Skip dates and ranges merged into sorted, disjoint (first, last) day ranges."""

    def __init__(self, entries: Sequence[str]) -> None:
        try:
            parsed = sorted(parse_skip_date(entry) for entry in entries)
        except ValueError as err:
            raise InvalidWindowError(f"skipDates: {err}") from err
        merged: list[tuple[datetime.date, datetime.date]] = []
        for first, last in parsed:
            if merged and first <= merged[-1][1] + datetime.timedelta(days=1):
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        self._ranges = tuple(merged)
        self._firsts = [first for first, _ in merged]

    def range_of(self, day: datetime.date) -> tuple[datetime.date, datetime.date] | None:
        """The merged range that contains `day`, if any."""
        index = bisect.bisect_right(self._firsts, day) - 1
        if index >= 0 and day <= self._ranges[index][1]:
            return self._ranges[index]
        return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidWindowError(f"unknown time zone {name!r}") from err


def _midnight(day: datetime.date, zone: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=zone).astimezone(datetime.UTC)


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


def _next_opening(
    window: StopWindow, instant: datetime.datetime, schedule: Schedule
) -> datetime.datetime | None:
    """The first stop fire strictly after `instant` that is not on a skip date."""
    cursor = instant
    while (fire := _next_fire(window.stop, cursor, schedule.zone)) is not None:
        skipped = schedule.skip.range_of(fire.astimezone(schedule.zone).date())
        if skipped is None:
            return fire
        # Jump past the whole skipped range; never backwards.
        cursor = max(
            fire, _midnight(skipped[1] + datetime.timedelta(days=1), schedule.zone) - _EDGE
        )
    return None


def _last_opening(
    window: StopWindow,
    instant: datetime.datetime,
    schedule: Schedule,
    floor: datetime.datetime | None,
) -> datetime.datetime | None:
    """The latest stop fire strictly before `instant` not on a skip date, if it is later than
    `floor` (an earlier one cannot matter)."""
    cursor = instant
    while (fire := _last_fire(window.stop, cursor, schedule.zone)) is not None:
        if floor is not None and fire <= floor:
            return None
        skipped = schedule.skip.range_of(fire.astimezone(schedule.zone).date())
        if skipped is None:
            return fire
        cursor = min(fire, _midnight(skipped[0], schedule.zone))
    return None


def _is_open(window: StopWindow, instant: datetime.datetime, schedule: Schedule) -> bool:
    last_start = _last_fire(window.start, instant, schedule.zone)
    # Open when the latest opening is more recent than the latest start.
    return _last_opening(window, instant, schedule, last_start) is not None


def _level(schedule: Schedule, instant: datetime.datetime) -> Level:
    """What the windows ask for just after `instant`: an edge exactly at it has happened."""
    if schedule.awake_until is not None and instant < schedule.awake_until:
        return None
    after = instant + _EDGE
    tiers = [w.replicas or 0 for w in schedule.windows if _is_open(w, after, schedule)]
    return min(tiers) if tiers else None


def _effective(level: Level, full: int | None) -> int | None:
    return full if level is None else level


def _transition(before: Level, after: Level, at: datetime.datetime, full: int | None) -> Transition:
    replicas = _effective(after, full)
    if after == 0:
        return Transition("Stop", at, 0)
    return Transition("Start" if before == 0 else "Scale", at, replicas)


def _candidates(schedule: Schedule, now: datetime.datetime) -> Iterator[datetime.datetime]:
    """Every instant after `now` where the level may change, soonest first and each once,
    merged lazily from each window's openings and closings (and the wake override's end)."""
    streams: dict[tuple[int, str], datetime.datetime | None] = {}
    for index, window in enumerate(schedule.windows):
        streams[index, "stop"] = _next_opening(window, now, schedule)
        streams[index, "start"] = _next_fire(window.start, now, schedule.zone)
    wake = schedule.awake_until if schedule.awake_until and schedule.awake_until > now else None
    last: datetime.datetime | None = None
    while True:
        pending = {key: at for key, at in streams.items() if at is not None}
        if not pending and wake is None:
            return
        key = min(pending, key=lambda k: pending[k]) if pending else None
        if wake is not None and (key is None or wake <= pending[key]):
            at, wake = wake, None
        else:
            assert key is not None
            at = pending[key]
            window = schedule.windows[key[0]]
            if key[1] == "stop":
                streams[key] = _next_opening(window, at, schedule)
            else:
                streams[key] = _next_fire(window.start, at, schedule.zone)
        if at != last:
            yield at
            last = at


def evaluate(
    windows: Sequence[StopWindow],
    time_zone: str,
    now: datetime.datetime,
    *,
    skip_dates: Sequence[str] = (),
    full_replicas: int | None = None,
    awake_until: datetime.datetime | None = None,
    count: int = NEXT_TRANSITIONS,
) -> WindowState:
    """What the windows ask for at `now`, and the next `count` transitions."""
    if not windows:
        return WindowState(inside=False, next_transition=None)
    schedule = Schedule(
        tuple(windows), _zone(time_zone), SkipDates(skip_dates), full_replicas,
        awake_until.astimezone(datetime.UTC) if awake_until is not None else None,
    )  # fmt: skip
    # Instants are compared in UTC: aware times in one zone compare by wall clock, ignoring
    # the fold, so the two passes of a repeated hour would be confused.
    now = now.astimezone(datetime.UTC)
    level = _level(schedule, now)
    transitions: list[Transition] = []
    current = level
    horizon = None
    for examined, candidate in enumerate(_candidates(schedule, now), start=1):
        after = _level(schedule, candidate)
        if _effective(after, full_replicas) != _effective(current, full_replicas):
            transitions.append(_transition(current, after, candidate, full_replicas))
            if len(transitions) == count:
                break
        current = after
        if examined >= MAX_CANDIDATES:
            horizon = candidate
            break
    return WindowState(
        inside=level == 0,
        next_transition=transitions[0] if transitions else None,
        level=level,
        transitions=tuple(transitions),
        horizon=horizon,
    )
