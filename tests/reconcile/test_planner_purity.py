"""`plan` is a pure function of its input: it reads no clock and no module state.

Comparing `plan(x) == plan(x)` back to back cannot catch either, because a clock read or a
global gives the same answer twice in a row. So: every clock the operator's modules can reach
raises while `plan` runs (`PlanClockReadError` derives from BaseException, so a broad
`except Exception` in the planner cannot swallow it), and the same inputs are planned again
in a fresh interpreter with another hash seed and local time zone, in reverse order, and the
results must be equal.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudinfer
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.baidu.parse import CAPABILITIES as BAIDU
from cloudinfer.cloud.huawei.parse import CAPABILITIES as HUAWEI
from cloudinfer.cloud.model import (
    Cloud,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
)
from cloudinfer.cloud.tencent.parse import CAPABILITIES as TENCENT
from cloudinfer.reconcile.planner import Plan, PlanInput, plan

UTC = datetime.UTC
CAPABILITIES = {Cloud.TENCENT: TENCENT, Cloud.HUAWEI: HUAWEI, Cloud.BAIDU: BAIDU}
NIGHTS_BERLIN = {
    "windows": [{"stop": "0 20 * * *", "start": "0 8 * * *"}],
    "timeZone": "Europe/Berlin",
}
WEEKENDS_NEW_YORK = {
    "windows": [{"stop": "0 18 * * 5", "start": "0 8 * * 1"}],
    "timeZone": "America/New_York",
}
TIERS_BERLIN = {
    "windows": [
        {"stop": "0 18 * * *", "start": "0 8 * * *", "replicas": 2},
        {"stop": "0 22 * * *", "start": "0 6 * * *", "replicas": 0},
    ],
    "skipDates": ["2026-11-28", "2026-12-24/2026-12-26"],
    "timeZone": "Europe/Berlin",
}
WAKES = (None, "2026-11-23T23:00:00+01:00", "2026-03-29T00:00:00Z", "soon")
# Instants on both sides of window edges and DST changes, on weekdays and weekends.
INSTANTS = (
    datetime.datetime(2026, 11, 23, 12, 0, tzinfo=UTC),  # Monday noon
    datetime.datetime(2026, 11, 23, 22, 0, tzinfo=UTC),  # Monday night in Berlin
    datetime.datetime(2026, 11, 28, 12, 0, tzinfo=UTC),  # Saturday
    datetime.datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # Berlin's spring-forward night
    datetime.datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # New York's fall-back hour
)


class PlanClockReadError(BaseException):
    """`plan` read a clock. BaseException, so that no `except Exception` hides it."""


_guarded_thread: list[int] = []
"""The thread `no_clock` guards; other threads (a simulator, an operator started by another
test) keep their clocks."""


def _refuse(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def refuse(*args: object, **kwargs: object) -> Any:
        if threading.get_ident() in _guarded_thread:
            raise PlanClockReadError(f"plan() read the clock through {what}")
        return real(*args, **kwargs)

    return refuse


class _DatetimeType(type):
    # Instances of the real datetime must still pass isinstance checks against the guard.
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, cls.__mro__[1])


class _GuardedDatetime(datetime.datetime, metaclass=_DatetimeType):
    now = staticmethod(_refuse("datetime.now()", datetime.datetime.now))
    utcnow = staticmethod(_refuse("datetime.utcnow()", datetime.datetime.utcnow))
    today = staticmethod(_refuse("datetime.today()", datetime.datetime.today))


class _GuardedDate(datetime.date, metaclass=_DatetimeType):
    today = staticmethod(_refuse("date.today()", datetime.date.today))


TIME_CLOCKS = ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "localtime")
REAL_TIME_CLOCKS = {name: getattr(time, name) for name in TIME_CLOCKS}


def _guarded_module(real: types.ModuleType, patched: dict[str, Any]) -> types.ModuleType:
    fake = types.ModuleType(real.__name__)
    fake.__dict__.update(vars(real))
    fake.__dict__.update(patched)
    return fake


GUARDED_DATETIME = _guarded_module(datetime, {"datetime": _GuardedDatetime, "date": _GuardedDate})
GUARDED_TIME_CLOCKS = {
    name: _refuse(f"time.{name}()", REAL_TIME_CLOCKS[name]) for name in TIME_CLOCKS
}
GUARDED_TIME = _guarded_module(time, GUARDED_TIME_CLOCKS)


def _replacement(value: object) -> object | None:
    """What a module global becomes under the guard, or None to keep it."""
    if value is datetime:
        return GUARDED_DATETIME
    if value is time:
        return GUARDED_TIME
    if value is datetime.datetime:
        return _GuardedDatetime
    if value is datetime.date:
        return _GuardedDate
    for name, real in REAL_TIME_CLOCKS.items():
        if value is real:
            return GUARDED_TIME_CLOCKS[name]
    return None


@contextlib.contextmanager
def no_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """On this thread, every clock raises: the ones bound in loaded `cloudinfer` modules,
    however imported (`import datetime`, `from datetime import datetime`, `from time import
    monotonic`), the `time` module's functions, and `datetime` imported afresh inside a
    function (the module itself is swapped in `sys.modules`)."""
    replaced: list[str] = []
    with monkeypatch.context() as patch:
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "cloudinfer" or name.startswith("cloudinfer.")):
                continue
            for attribute, value in list(vars(module).items()):
                guarded = _replacement(value)
                if guarded is not None:
                    patch.setattr(module, attribute, guarded)
                    replaced.append(f"{name}.{attribute}")
        for name, guarded_clock in GUARDED_TIME_CLOCKS.items():
            patch.setattr(time, name, guarded_clock)
        patch.setitem(sys.modules, "datetime", GUARDED_DATETIME)
        _guarded_thread.append(threading.get_ident())
        try:
            yield replaced
        finally:
            _guarded_thread.clear()


def _spec(**fields: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate(
        {"accountRef": {"name": "acct"}, "serviceId": "svc-1", **fields}
    )


def _observed(
    cloud: Cloud,
    *,
    replicas: int = 2,
    phase: Phase = Phase.RUNNING,
    rps: float | None = None,
    scheduled_stop: datetime.datetime | None = None,
    platform_stop: str | None = None,
) -> ObservedService:
    scope = RateLimitScope.PER_SERVICE if cloud is Cloud.HUAWEI else RateLimitScope.PER_INSTANCE
    return ObservedService(
        cloud=cloud,
        service_id="svc-1",
        replicas=Replicas(desired=replicas, ready=replicas),
        rate_limit=RateLimitSetting(rps=rps, scope=scope) if rps else None,
        scheduled_stop=scheduled_stop,
        phase=phase,
        raw_status=phase.value,
        platform_stop=platform_stop,
        capabilities=CAPABILITIES[cloud],
    )


def cases() -> list[PlanInput]:
    """Inputs that reach the planner's branches: every cloud, field, mode and window state."""
    specs = [
        _spec(replicas=3),
        _spec(replicas=2, rateLimit={"requestsPerSecond": 22, "scope": "PerInstance"}),
        _spec(rateLimit={"unlimited": True}),
        _spec(replicas=2, stopSchedule=NIGHTS_BERLIN),
        _spec(replicas=2, stopSchedule=WEEKENDS_NEW_YORK),
        _spec(replicas=2, stopSchedule={"stopAt": "2026-11-23T13:00:00Z"}),
        _spec(replicas=3, suspend=True),
        _spec(replicas=3, policy={"mode": "ObserveOnly"}),
        _spec(replicas=3, stopSchedule=TIERS_BERLIN),
    ]
    observations = [
        _observed(Cloud.TENCENT, rps=10),
        _observed(Cloud.HUAWEI, scheduled_stop=datetime.datetime(2026, 11, 23, 13, tzinfo=UTC)),
        _observed(Cloud.BAIDU, rps=3),
        _observed(Cloud.TENCENT, replicas=0, phase=Phase.STOPPED),
        _observed(Cloud.TENCENT, phase=Phase.TRANSITIONING),
        _observed(Cloud.TENCENT, replicas=0, phase=Phase.STOPPED, platform_stop="ARREARS_STOP"),
    ]
    return [
        PlanInput(spec, seen, now - datetime.timedelta(seconds=5), now, wake_until=wake)
        for spec in specs
        for seen in observations
        for now in INSTANTS
        for wake in (WAKES if spec.stop_schedule and spec.stop_schedule.windows else (None,))
    ]


def _module_state() -> dict[str, dict[str, object]]:
    """The planner modules' globals: names bound, and the contents of mutable ones."""
    state: dict[str, dict[str, object]] = {}
    for name, module in sorted(sys.modules.items()):
        if module is None or not name.startswith("cloudinfer.reconcile."):
            continue
        state[name] = {
            attribute: repr(value) if isinstance(value, dict | list | set) else id(value)
            for attribute, value in vars(module).items()
        }
    return state


def _clock_of(guarded: object) -> Callable[[], object]:
    if guarded is GUARDED_DATETIME:
        return GUARDED_DATETIME.datetime.now  # type: ignore[no-any-return]
    if guarded is GUARDED_TIME:
        return GUARDED_TIME.time  # type: ignore[no-any-return]
    if guarded is _GuardedDatetime:
        return _GuardedDatetime.now
    if guarded is _GuardedDate:
        return _GuardedDate.today
    assert callable(guarded)
    return guarded


def test_the_clock_guard_covers_the_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    planner_module = sys.modules[plan.__module__]
    original = dict(vars(planner_module))
    with no_clock(monkeypatch) as replaced:
        assert any(name.startswith(f"{plan.__module__}.") for name in replaced), replaced
        for name in replaced:
            module_name, attribute = name.rsplit(".", 1)
            with pytest.raises(PlanClockReadError):
                _clock_of(getattr(sys.modules[module_name], attribute))()
        # Real datetimes still pass the planner's isinstance checks.
        assert isinstance(datetime.datetime(2026, 1, 1), _GuardedDatetime)
        assert isinstance(datetime.date(2026, 1, 1), _GuardedDate)
    assert vars(planner_module) == original


def test_planning_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = cases()
    before = _module_state()
    with no_clock(monkeypatch):
        results = [plan(one) for one in inputs]
    after = _module_state()
    changed = [
        f"{module}.{name}"
        for module in before.keys() | after.keys()
        for name in before.get(module, {}).keys() | after.get(module, {}).keys()
        if before.get(module, {}).get(name) != after.get(module, {}).get(name)
    ]
    assert not changed, f"plan() changed module-level state: {sorted(changed)}"
    assert len({(r.reason, r.changes) for r in results}) > 5, "the cases reach too few branches"

    # The same inputs, planned fresh in another interpreter: another hash seed, another local
    # time zone, reverse order. A result that depends on earlier calls, on module state this
    # test session has touched, or on the host's zone differs here.
    script = (
        "import pickle, sys\n"
        "import test_planner_purity as t\n"
        "inputs = t.cases()\n"
        "results = [t.plan(one) for one in reversed(inputs)][::-1]\n"
        "sys.stdout.buffer.write(pickle.dumps(results))\n"
    )
    environment = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "TZ": "Pacific/Kiritimati",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), str(Path(cloudinfer.__file__).parents[1])]
        ),
    }
    fresh = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, check=True
    )
    fresh_results: list[Plan] = pickle.loads(fresh.stdout)  # noqa: S301 - our own child's output
    differing = [
        f"case {index}: {one.observed.cloud.value}, now {one.now.isoformat()}, spec {one.spec}"
        for index, (one, here, there) in enumerate(zip(inputs, results, fresh_results, strict=True))
        if here != there
    ]
    assert not differing, "plan() gave another result in a fresh process:\n" + "\n".join(
        differing[:3]
    )
