"""Recurring stop windows, table-driven: DST gaps and folds in six zones, windows across
midnight and weekends, overlapping windows, and the next transition; then tiers, skip dates
and the wake override, with the next three transitions.

Each case gives the instant in UTC and, in its comment, the wall-clock time in the window's
zone. The 2026 clock changes used: America/New_York springs forward on 8 March (02:00 EST →
03:00 EDT) and falls back on 1 November (02:00 EDT → 01:00 EST); Europe/Berlin on 29 March
(02:00 CET → 03:00 CEST) and 25 October (03:00 CEST → 02:00 CET); Australia/Sydney falls back
on 5 April (03:00 AEDT → 02:00 AEST) and springs forward on 4 October (02:00 AEST → 03:00
AEDT); Europe/London on 29 March (01:00 GMT → 02:00 BST) and 25 October (02:00 BST → 01:00
GMT); America/Santiago falls back on 5 April (00:00 → 23:00 the day before, so 23:00-24:00
on 4 April is repeated) and springs forward on 6 September (00:00 → 01:00: that midnight does
not exist); Pacific/Auckland falls back on 5 April (03:00 NZDT → 02:00 NZST) and springs
forward on 27 September (02:00 NZST → 03:00 NZDT). Cron follows Debian: a time the gap
skips fires at the end of the gap, a time the fold repeats fires once, in its first pass.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from cloudinfer.api.inferenceservice import StopWindow
from cloudinfer.reconcile.windows import InvalidWindowError, WindowState, evaluate

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
SYDNEY = "Australia/Sydney"
LONDON = "Europe/London"
SANTIAGO = "America/Santiago"
AUCKLAND = "Pacific/Auckland"
SHANGHAI = "Asia/Shanghai"


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Case:
    windows: tuple[tuple[str, str], ...]
    """(stop, start) cron pairs."""
    zone: str
    now: str
    """UTC, ISO 8601 without offset."""
    inside: bool
    next_action: Literal["Stop", "Start"] | None
    next_at: str | None = None
    """UTC, ISO 8601 without offset."""

    def evaluate(self, now: datetime.datetime | None = None) -> WindowState:
        windows = [StopWindow(stop=stop, start=start) for stop, start in self.windows]
        return evaluate(windows, self.zone, now or utc(self.now))


NIGHTS = ("0 20 * * *", "0 8 * * *")
WEEKEND = ("0 18 * * 5", "0 8 * * 1")

CASES = {
    # --- America/New_York -----------------------------------------------------------------
    "new-york-stop-in-the-spring-gap-fires-at-the-end-of-the-gap": Case(
        (("30 2 * * *", "0 6 * * *"),), NEW_YORK,
        "2026-03-08T06:00",  # Sun 01:00 EST; 02:30 does not exist today
        False, "Stop", "2026-03-08T07:00",  # 03:00 EDT
    ),
    "new-york-overnight-window-across-spring-forward-is-an-hour-shorter": Case(
        (("0 22 * * *", "0 6 * * *"),), NEW_YORK,
        "2026-03-08T03:00",  # Sat 22:00 EST: the window opens exactly now
        True, "Start", "2026-03-08T10:00",  # Sun 06:00 EDT, 7 hours later
    ),
    "new-york-before-the-repeated-hour": Case(
        (("30 1 * * *", "0 6 * * *"),), NEW_YORK,
        "2026-11-01T04:00",  # Sun 00:00 EDT
        False, "Stop", "2026-11-01T05:30",  # 01:30 EDT, the first pass
    ),
    "new-york-second-pass-of-the-repeated-hour-is-inside": Case(
        (("30 1 * * *", "0 6 * * *"),), NEW_YORK,
        "2026-11-01T06:00",  # Sun 01:00 EST: 01:30 EDT has already happened
        True, "Start", "2026-11-01T11:00",  # 06:00 EST
    ),
    "new-york-a-repeated-stop-time-stops-once": Case(
        (("30 1 * * *", "45 1 * * *"),), NEW_YORK,
        "2026-11-01T06:35",  # Sun 01:35 EST: the window was 01:30-01:45 EDT
        False, "Stop", "2026-11-02T06:30",  # Mon 01:30 EST, not 01:30 EST today
    ),
    "new-york-weekend-window-on-saturday": Case(
        (WEEKEND,), NEW_YORK,
        "2026-11-28T17:00",  # Sat 12:00 EST
        True, "Start", "2026-11-30T13:00",  # Mon 08:00 EST
    ),
    "new-york-weekend-window-on-friday-afternoon": Case(
        (WEEKEND,), NEW_YORK,
        "2026-11-27T22:00",  # Fri 17:00 EST
        False, "Stop", "2026-11-27T23:00",  # Fri 18:00 EST
    ),
    "new-york-weekend-window-across-fall-back": Case(
        (WEEKEND,), NEW_YORK,
        "2026-10-31T16:00",  # Sat 12:00 EDT
        True, "Start", "2026-11-02T13:00",  # Mon 08:00 EST
    ),
    "new-york-overlapping-windows-flip-only-when-their-union-does": Case(
        (NIGHTS, WEEKEND), NEW_YORK,
        "2026-11-27T23:30",  # Fri 18:30 EST: the weekend window is open
        True, "Start", "2026-11-30T13:00",  # Mon 08:00 EST, not the nightly Sat 08:00
    ),
    # --- Europe/Berlin --------------------------------------------------------------------
    "berlin-nights-across-fall-back": Case(
        (NIGHTS,), BERLIN,
        "2026-10-24T19:00",  # Sat 21:00 CEST
        True, "Start", "2026-10-25T07:00",  # Sun 08:00 CET
    ),
    "berlin-sunday-stop-in-the-spring-gap": Case(
        (("30 2 * * 0", "0 9 * * 0"),), BERLIN,
        "2026-03-29T00:00",  # Sun 01:00 CET; 02:30 does not exist today
        False, "Stop", "2026-03-29T01:00",  # 03:00 CEST
    ),
    "berlin-before-the-repeated-hour": Case(
        (("30 2 * * *", "0 9 * * *"),), BERLIN,
        "2026-10-24T23:00",  # Sun 01:00 CEST
        False, "Stop", "2026-10-25T00:30",  # 02:30 CEST, the first pass
    ),
    "berlin-second-pass-of-the-repeated-hour-is-inside": Case(
        (("30 2 * * *", "0 9 * * *"),), BERLIN,
        "2026-10-25T01:00",  # Sun 02:00 CET: 02:30 CEST has already happened
        True, "Start", "2026-10-25T08:00",  # 09:00 CET
    ),
    "berlin-window-across-midnight-after-midnight": Case(
        (("0 22 * * *", "0 6 * * *"),), BERLIN,
        "2026-06-10T01:00",  # Wed 03:00 CEST
        True, "Start", "2026-06-10T04:00",  # 06:00 CEST
    ),
    "berlin-window-across-midnight-the-evening-before": Case(
        (("0 22 * * *", "0 6 * * *"),), BERLIN,
        "2026-06-09T19:00",  # Tue 21:00 CEST
        False, "Stop", "2026-06-09T20:00",  # 22:00 CEST
    ),
    "berlin-an-edge-exactly-now-has-happened": Case(
        (("0 22 * * *", "0 6 * * *"),), BERLIN,
        "2026-06-10T04:00",  # Wed 06:00 CEST, the start itself
        False, "Stop", "2026-06-10T20:00",  # 22:00 CEST
    ),
    # --- Australia/Sydney -----------------------------------------------------------------
    "sydney-before-the-repeated-hour": Case(
        (("30 2 * * *", "0 7 * * *"),), SYDNEY,
        "2026-04-04T14:00",  # Sun 01:00 AEDT
        False, "Stop", "2026-04-04T15:30",  # 02:30 AEDT, the first pass
    ),
    "sydney-second-pass-of-the-repeated-hour-is-inside": Case(
        (("30 2 * * *", "0 7 * * *"),), SYDNEY,
        "2026-04-04T16:00",  # Sun 02:00 AEST: 02:30 AEDT has already happened
        True, "Start", "2026-04-04T21:00",  # 07:00 AEST
    ),
    "sydney-stop-in-the-spring-gap": Case(
        (("30 2 * * *", "0 7 * * *"),), SYDNEY,
        "2026-10-03T15:00",  # Sun 01:00 AEST; 02:30 does not exist today
        False, "Stop", "2026-10-03T16:00",  # 03:00 AEDT
    ),
    "sydney-weekend-window-across-fall-back": Case(
        (("0 18 * * 5", "0 7 * * 1"),), SYDNEY,
        "2026-04-04T03:00",  # Sat 14:00 AEDT
        True, "Start", "2026-04-05T21:00",  # Mon 07:00 AEST
    ),
    "sydney-weeknights-friday-night-runs-into-saturday": Case(
        (("0 22 * * 1-5", "0 6 * * 2-6"),), SYDNEY,
        "2026-11-27T12:00",  # Fri 23:00 AEDT
        True, "Start", "2026-11-27T19:00",  # Sat 06:00 AEDT
    ),
    "sydney-weeknights-no-stop-at-the-weekend": Case(
        (("0 22 * * 1-5", "0 6 * * 2-6"),), SYDNEY,
        "2026-11-28T01:00",  # Sat 12:00 AEDT
        False, "Stop", "2026-11-30T11:00",  # Mon 22:00 AEDT
    ),
    # --- Europe/London --------------------------------------------------------------------
    "london-stop-in-the-spring-gap-fires-at-the-end-of-the-gap": Case(
        (("30 1 * * *", "0 7 * * *"),), LONDON,
        "2026-03-29T00:00",  # Sun 00:00 GMT; 01:30 does not exist today
        False, "Stop", "2026-03-29T01:00",  # 02:00 BST
    ),
    "london-second-pass-of-the-repeated-hour-is-inside": Case(
        (("30 1 * * *", "0 7 * * *"),), LONDON,
        "2026-10-25T01:10",  # Sun 01:10 GMT: 01:30 BST (00:30 UTC) has already happened
        True, "Start", "2026-10-25T07:00",  # 07:00 GMT
    ),
    # --- America/Santiago: the clocks change at midnight ----------------------------------
    "santiago-midnight-stop-on-the-spring-gap-day-fires-at-one": Case(
        (("0 0 * * *", "0 6 * * *"),), SANTIAGO,
        "2026-09-06T03:30",  # Sat 23:30 -04; Sunday's midnight does not exist
        False, "Stop", "2026-09-06T04:00",  # Sun 01:00 -03
    ),
    "santiago-second-pass-of-the-repeated-hour-before-midnight-is-inside": Case(
        (("30 23 * * *", "0 6 * * *"),), SANTIAGO,
        "2026-04-05T03:45",  # Sat 23:45 -04: 23:30 -03 (02:30 UTC) has already happened
        True, "Start", "2026-04-05T10:00",  # Sun 06:00 -04
    ),
    # --- Pacific/Auckland -----------------------------------------------------------------
    "auckland-stop-in-the-spring-gap": Case(
        (("30 2 * * *", "0 7 * * *"),), AUCKLAND,
        "2026-09-26T13:00",  # Sun 01:00 NZST; 02:30 does not exist today
        False, "Stop", "2026-09-26T14:00",  # 03:00 NZDT
    ),
    "auckland-second-pass-of-the-repeated-hour-is-inside": Case(
        (("30 2 * * *", "0 7 * * *"),), AUCKLAND,
        "2026-04-04T14:45",  # Sun 02:45 NZST: 02:30 NZDT (13:30 UTC) has already happened
        True, "Start", "2026-04-04T19:00",  # 07:00 NZST
    ),
    # --- no DST ---------------------------------------------------------------------------
    "utc-nights": Case(
        (NIGHTS,), "UTC", "2026-11-23T12:00", False, "Stop", "2026-11-23T20:00"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_window_state_and_next_transition(case: Case) -> None:
    state = case.evaluate()
    assert state.inside is case.inside
    transition = state.next_transition
    expected = None
    if case.next_action is not None and case.next_at is not None:
        expected = (case.next_action, utc(case.next_at))
    got = (transition.action, transition.at) if transition else None
    assert got == expected, f"local now {utc(case.now).astimezone(ZoneInfo(case.zone)).isoformat()}"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_state_flips_at_the_next_transition_and_not_before(case: Case) -> None:
    transition = case.evaluate().next_transition
    assert transition is not None
    assert transition.at > utc(case.now)
    before = case.evaluate(transition.at - datetime.timedelta(seconds=1))
    assert before.inside is case.inside
    assert before.next_transition == transition
    after = case.evaluate(transition.at)
    assert after.inside is (transition.action == "Stop")


def test_no_windows_means_never_stopped() -> None:
    assert evaluate([], NEW_YORK, utc("2026-11-01T06:00")) == WindowState(False, None)


@pytest.mark.parametrize(
    ("stop", "zone", "message"),
    [
        ("61 20 * * *", "UTC", "61"),
        ("0 0 31 2 *", "UTC", "0 0 31 2 *"),
        ("0 20 * * *", "Mars/Olympus_Mons", "Mars/Olympus_Mons"),
    ],
)
def test_a_window_that_cannot_be_evaluated_is_refused_by_name(
    stop: str, zone: str, message: str
) -> None:
    window = StopWindow.model_construct(stop=stop, start="0 8 * * *")
    with pytest.raises(InvalidWindowError, match=message):
        evaluate([window], zone, utc("2026-11-23T12:00"))


# --- tiers, skip dates and the wake override -----------------------------------------------


@dataclass(frozen=True)
class Sched:
    windows: tuple[tuple[str, str, int | None], ...]
    """(stop, start, replicas) triples."""
    zone: str
    now: str
    level: int | None
    """What the windows ask for now: None outside, 0 stopped, n a tier."""
    transitions: tuple[tuple[str, str, int | None], ...]
    """The next three: (action, UTC time, replicas after it)."""
    skip: tuple[str, ...] = ()
    full: int | None = None
    """spec.replicas."""
    awake_until: str | None = None

    def evaluate(self, now: datetime.datetime | None = None) -> WindowState:
        windows = [StopWindow(stop=a, start=b, replicas=n) for a, b, n in self.windows]
        return evaluate(
            windows, self.zone, now or utc(self.now), skip_dates=self.skip,
            full_replicas=self.full,
            awake_until=utc(self.awake_until) if self.awake_until else None,
        )  # fmt: skip


BERLIN_NIGHTS = (("0 20 * * *", "0 8 * * *", None),)
SCHEDULES = {
    "a-skip-date-opens-no-window": Sched(
        BERLIN_NIGHTS, BERLIN,
        "2026-12-24T12:00",  # Thu 13:00 CET, a skip date: tonight's 20:00 does not open
        None,
        (("Stop", "2026-12-25T19:00", 0), ("Start", "2026-12-26T07:00", 2),
         ("Stop", "2026-12-26T19:00", 0)),
        skip=("2026-12-24",), full=2,
    ),
    "a-window-opened-the-day-before-a-skip-date-closes-as-scheduled": Sched(
        BERLIN_NIGHTS, BERLIN,
        "2026-12-24T05:00",  # Thu 06:00 CET: open since Wed 20:00
        0,
        (("Start", "2026-12-24T07:00", 2), ("Stop", "2026-12-25T19:00", 0),
         ("Start", "2026-12-26T07:00", 2)),
        skip=("2026-12-24",), full=2,
    ),
    "a-skip-range-is-in-the-schedule's-zone-not-utc": Sched(
        (("0 1 * * *", "0 6 * * *", None),), SHANGHAI,
        "2026-12-23T16:30",  # Thu 24 Dec 00:30 CST, still the 23rd in UTC
        None,
        (("Stop", "2026-12-26T17:00", 0), ("Start", "2026-12-26T22:00", None),
         ("Stop", "2026-12-27T17:00", 0)),
        skip=("2026-12-24/2026-12-26",),
    ),
    "a-skip-date-on-santiago's-missing-midnight": Sched(
        (("0 0 * * *", "0 6 * * *", None),), SANTIAGO,
        "2026-09-05T12:00",  # Sat 08:00 -04; Sunday's stop (01:00 -03) is skipped
        None,
        (("Stop", "2026-09-07T03:00", 0), ("Start", "2026-09-07T09:00", 3),
         ("Stop", "2026-09-08T03:00", 0)),
        skip=("2026-09-06",), full=3,
    ),
    "a-skip-date-in-london's-repeated-hour": Sched(
        (("30 1 * * *", "0 7 * * *", None),), LONDON,
        "2026-10-24T23:00",  # Sun 00:00 BST; 01:30 BST (the first pass) is on the skip date
        None,
        (("Stop", "2026-10-26T01:30", 0), ("Start", "2026-10-26T07:00", 1),
         ("Stop", "2026-10-27T01:30", 0)),
        skip=("2026-10-25",), full=1,
    ),
    "overlapping-tiers-the-lowest-count-wins": Sched(
        (("0 18 * * *", "0 8 * * *", 2), ("0 22 * * *", "0 6 * * *", 0)), NEW_YORK,
        "2026-06-10T20:00",  # Wed 16:00 EDT
        None,
        (("Scale", "2026-06-10T22:00", 2),  # 18:00 EDT: the evening tier
         ("Stop", "2026-06-11T02:00", 0),  # 22:00 EDT: the night stop wins over the tier
         ("Start", "2026-06-11T10:00", 2)),  # 06:00 EDT: back to the tier, not to 4
        full=4,
    ),
    "inside-a-tier-the-service-scales-back-when-it-closes": Sched(
        (("0 18 * * *", "0 8 * * *", 2), ("0 22 * * *", "0 6 * * *", 0)), NEW_YORK,
        "2026-06-11T11:00",  # Thu 07:00 EDT
        2,
        (("Scale", "2026-06-11T12:00", 4), ("Scale", "2026-06-11T22:00", 2),
         ("Stop", "2026-06-12T02:00", 0)),
        full=4,
    ),
    "nested-tiers": Sched(
        (("0 9 * * *", "0 17 * * *", 3), ("0 12 * * *", "0 13 * * *", 1)), "UTC",
        "2026-06-10T10:00", 3,
        (("Scale", "2026-06-10T12:00", 1), ("Scale", "2026-06-10T13:00", 3),
         ("Scale", "2026-06-10T17:00", 5)),
        full=5,
    ),
    "a-tier-equal-to-spec-replicas-is-no-transition": Sched(
        (("0 8 * * *", "0 20 * * *", 2), ("0 22 * * *", "0 6 * * *", 0)), "UTC",
        "2026-06-10T12:00", 2,
        (("Stop", "2026-06-10T22:00", 0), ("Start", "2026-06-11T06:00", 2),
         ("Stop", "2026-06-11T22:00", 0)),
        full=2,
    ),
    "a-tier-across-a-spring-gap-in-sydney": Sched(
        (("30 2 * * *", "0 7 * * *", 1),), SYDNEY,
        "2026-10-03T15:00",  # Sun 01:00 AEST; 02:30 does not exist today
        None,
        (("Scale", "2026-10-03T16:00", 1),  # 03:00 AEDT
         ("Scale", "2026-10-03T20:00", 3),  # 07:00 AEDT
         ("Scale", "2026-10-04T15:30", 1)),  # Mon 02:30 AEDT
        full=3,
    ),
    "a-wake-override-keeps-it-up-through-a-window-then-it-stops": Sched(
        BERLIN_NIGHTS, BERLIN,
        "2026-06-10T21:00",  # Wed 23:00 CEST, inside the window
        None,
        (("Stop", "2026-06-10T23:30", 0),  # the override ends inside the window
         ("Start", "2026-06-11T06:00", 2), ("Stop", "2026-06-11T18:00", 0)),
        full=2, awake_until="2026-06-10T23:30",
    ),
    "a-wake-override-ending-outside-the-windows-changes-nothing": Sched(
        BERLIN_NIGHTS, BERLIN,
        "2026-06-10T12:00", None,
        (("Stop", "2026-06-10T18:00", 0), ("Start", "2026-06-11T06:00", 2),
         ("Stop", "2026-06-11T18:00", 0)),
        full=2, awake_until="2026-06-10T14:00",
    ),
    "a-wake-override-lifts-a-tier": Sched(
        (("0 18 * * *", "0 8 * * *", 2),), "UTC",
        "2026-06-10T19:00", None,
        (("Scale", "2026-06-10T20:00", 2), ("Scale", "2026-06-11T08:00", 4),
         ("Scale", "2026-06-11T18:00", 2)),
        full=4, awake_until="2026-06-10T20:00",
    ),
}  # fmt: skip


def _as_tuples(state: WindowState) -> tuple[tuple[str, str, int | None], ...]:
    return tuple((t.action, t.at.strftime("%Y-%m-%dT%H:%M"), t.replicas) for t in state.transitions)


@pytest.mark.parametrize("case", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_level_and_next_three_transitions(case: Sched) -> None:
    state = case.evaluate()
    assert state.level == case.level
    assert state.inside is (case.level == 0)
    assert _as_tuples(state) == case.transitions, (
        f"local now {utc(case.now).astimezone(ZoneInfo(case.zone)).isoformat()}"
    )
    assert state.next_transition == state.transitions[0]
    assert state.horizon is None


@pytest.mark.parametrize("case", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_each_transition_happens_at_its_instant_and_not_before(case: Sched) -> None:
    """Evaluated again a second before and at each transition (as the reconciler does when
    it wakes), the level holds until the instant and is the transition's after it."""
    transitions = case.evaluate().transitions
    full = case.full
    for index, transition in enumerate(transitions):
        before = case.evaluate(transition.at - datetime.timedelta(seconds=1))
        assert before.next_transition == transition
        after = case.evaluate(transition.at)
        assert (full if after.level is None else after.level) == transition.replicas
        rest = transitions[index + 1 :]
        assert after.transitions[: len(rest)] == rest


def test_a_year_of_skip_dates_over_a_frequent_window_stops_at_a_horizon() -> None:
    """The search for transitions is bounded: with every opening skipped for two years, it
    stops after MAX_CANDIDATES closings and asks to be re-evaluated then."""
    now = utc("2026-06-10T12:00")
    state = evaluate(
        [StopWindow(stop="*/5 * * * *", start="1-59/5 * * * *")], "UTC", now,
        skip_dates=["2026-01-01/2027-12-31"],
    )  # fmt: skip
    assert state.level is None
    assert state.transitions == ()
    assert state.horizon == utc("2026-06-10T12:01") + datetime.timedelta(minutes=5 * 399)


def test_skip_dates_that_cannot_be_read_are_refused_by_name() -> None:
    with pytest.raises(InvalidWindowError, match="2026-02-30"):
        evaluate(
            [StopWindow(stop="0 20 * * *", start="0 8 * * *")], "UTC", utc("2026-06-10T12:00"),
            skip_dates=["2026-02-30"],
        )  # fmt: skip
