"""Recurring stop windows, table-driven: DST gaps and folds in three zones, windows across
midnight and weekends, overlapping windows, and the next transition.

Each case gives the instant in UTC and, in its comment, the wall-clock time in the window's
zone. The 2026 clock changes used: America/New_York springs forward on 8 March (02:00 EST →
03:00 EDT) and falls back on 1 November (02:00 EDT → 01:00 EST); Europe/Berlin on 29 March
(02:00 CET → 03:00 CEST) and 25 October (03:00 CEST → 02:00 CET); Australia/Sydney falls back
on 5 April (03:00 AEDT → 02:00 AEST) and springs forward on 4 October (02:00 AEST → 03:00
AEDT). Cron follows Debian: a time the gap skips fires at the end of the gap, a time the fold
repeats fires once, in its first pass.
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
    assert got == expected, (
        f"local now {utc(case.now).astimezone(ZoneInfo(case.zone)).isoformat()}"
    )


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
