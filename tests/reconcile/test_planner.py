"""The planner, table-driven: each case says why it exists in its id."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudinfer.api.conditions import Reason
from cloudinfer.api.inferenceservice import InferenceServiceSpec
from cloudinfer.cloud.baidu.parse import CAPABILITIES as BAIDU
from cloudinfer.cloud.huawei.parse import CAPABILITIES as HUAWEI
from cloudinfer.cloud.model import (
    Capabilities,
    Cloud,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    ServiceField,
)
from cloudinfer.cloud.tencent.parse import CAPABILITIES as TENCENT
from cloudinfer.reconcile.ledger import LedgerEntry, Target
from cloudinfer.reconcile.planner import PlanInput, plan

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)  # a Monday
OBSERVED_AT = NOW - datetime.timedelta(seconds=5)
CAPS = {Cloud.TENCENT: TENCENT, Cloud.HUAWEI: HUAWEI, Cloud.BAIDU: BAIDU}


def spec(**fields: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate(
        {"accountRef": {"name": "acct"}, "serviceId": "svc-1", **fields}
    )


def observed(
    cloud: Cloud = Cloud.TENCENT,
    *,
    replicas: int | None = 2,
    phase: Phase = Phase.RUNNING,
    rps: float | None = None,
    scope: RateLimitScope = RateLimitScope.PER_INSTANCE,
    scheduled_stop: datetime.datetime | None = None,
    platform_stop: str | None = None,
    caps: Capabilities | None = None,
) -> ObservedService:
    return ObservedService(
        cloud=cloud,
        service_id="svc-1",
        replicas=Replicas(desired=replicas, ready=replicas),
        rate_limit=RateLimitSetting(rps=rps, scope=scope) if rps else None,
        scheduled_stop=scheduled_stop,
        phase=phase,
        raw_status=phase.value,
        platform_stop=platform_stop,
        capabilities=caps or CAPS[cloud],
    )


KIND = {
    ServiceField.REPLICAS: "scale",
    ServiceField.RATE_LIMIT: "set-rate-limit",
    ServiceField.SCHEDULE: "set-schedule",
    ServiceField.STOP: "stop",
    ServiceField.RESUME: "resume",
}


def write(
    target: ServiceField,
    seconds_ago: float,
    *,
    succeeded: bool = True,
    stop_at: datetime.datetime | None = None,
) -> LedgerEntry:
    """A ledger entry; a refusal is retried 15 s after it (a transient error's first retry)."""
    at = NOW - datetime.timedelta(seconds=seconds_ago)
    return LedgerEntry(
        at=at, field=target, kind=KIND[target], target=Target(stop_at=stop_at),
        succeeded=succeeded, retry_at=None if succeeded else at + datetime.timedelta(seconds=15),
    )  # fmt: skip


@dataclass
class Case:
    spec: InferenceServiceSpec
    observed: ObservedService
    kinds: list[str]
    reason: Reason
    ready: bool = False
    writes: tuple[LedgerEntry, ...] = ()
    paused: bool = False
    now: datetime.datetime = NOW
    check: dict[str, Any] = field(default_factory=dict)
    wake: str | None = None
    """The cloudinfer.dev/wake-until annotation."""


IN_ONE_HOUR = NOW + datetime.timedelta(hours=1)
AN_HOUR_AGO = NOW - datetime.timedelta(hours=1)
NIGHTS = {"windows": [{"stop": "0 20 * * *", "start": "0 8 * * *"}], "timeZone": "UTC"}
DAYTIME = {"windows": [{"stop": "0 8 * * *", "start": "0 20 * * *"}], "timeZone": "UTC"}
DAYTIME_TIER = {
    "windows": [{"stop": "0 8 * * *", "start": "0 20 * * *", "replicas": 1}],
    "timeZone": "UTC",
}
NIGHTS_TIER = {
    "windows": [{"stop": "0 20 * * *", "start": "0 8 * * *", "replicas": 1}],
    "timeZone": "UTC",
}

CASES = {
    "converged-when-everything-matches": Case(
        spec(replicas=2), observed(replicas=2), [], Reason.CONVERGED, ready=True
    ),
    "unmanaged-fields-are-left-alone": Case(
        spec(), observed(replicas=7, rps=5), [], Reason.CONVERGED, ready=True
    ),
    "replicas-differ-one-scale": Case(
        spec(replicas=3), observed(replicas=2), ["scale"], Reason.CONVERGING
    ),
    "rps-change-is-a-rate-limit-call-never-a-scale": Case(
        spec(replicas=2, rateLimit={"requestsPerSecond": 22, "scope": "PerInstance"}),
        observed(replicas=2, rps=10),
        ["set-rate-limit"],
        Reason.CONVERGING,
    ),
    "unlimited-clears-an-existing-limit": Case(
        spec(rateLimit={"unlimited": True}),
        observed(rps=10),
        ["clear-rate-limit"],
        Reason.CONVERGING,
    ),
    "unlimited-and-no-limit-is-converged": Case(
        spec(rateLimit={"unlimited": True}), observed(), [], Reason.CONVERGED, ready=True
    ),
    "scope-the-cloud-lacks-is-reported-not-converted": Case(
        spec(rateLimit={"requestsPerSecond": 5, "scope": "PerService"}),
        observed(rps=5),
        [],
        Reason.UNSUPPORTED_BY_CLOUD,
    ),
    "modelarts-v1-rps-limit-is-unsupported-but-replicas-still-managed": Case(
        spec(replicas=3, rateLimit={"requestsPerSecond": 5, "scope": "PerService"}),
        observed(Cloud.HUAWEI, replicas=2),
        ["scale"],
        Reason.UNSUPPORTED_BY_CLOUD,
    ),
    "qianfan-qps-is-read-only": Case(
        spec(rateLimit={"requestsPerSecond": 5, "scope": "PerInstance"}),
        observed(Cloud.BAIDU, rps=3),
        [],
        Reason.UNSUPPORTED_BY_CLOUD,
    ),
    "no-writes-while-the-cloud-transitions": Case(
        spec(replicas=3, rateLimit={"requestsPerSecond": 9, "scope": "PerInstance"}),
        observed(replicas=2, phase=Phase.TRANSITIONING),
        [],
        Reason.CONVERGING,
    ),
    "a-write-not-yet-observed-is-not-repeated": Case(
        spec(replicas=3),
        observed(replicas=2),
        [],
        Reason.CONVERGING,
        writes=(write(ServiceField.REPLICAS, 1),),
    ),
    "an-old-write-the-cloud-ignored-is-retried": Case(
        spec(replicas=3),
        observed(replicas=2),
        ["scale"],
        Reason.CONVERGING,
        writes=(write(ServiceField.REPLICAS, 600),),
    ),
    "a-write-to-another-field-does-not-block": Case(
        spec(replicas=3),
        observed(replicas=2),
        ["scale"],
        Reason.CONVERGING,
        writes=(write(ServiceField.RATE_LIMIT, 1),),
    ),
    "suspend-stops-a-running-service": Case(
        spec(suspend=True, replicas=2), observed(), ["stop"], Reason.CONVERGING
    ),
    "suspended-and-stopped-is-suspended-not-scaled": Case(
        spec(suspend=True, replicas=5),
        observed(replicas=0, phase=Phase.STOPPED),
        [],
        Reason.SUSPENDED,
    ),
    "unsuspend-resumes-what-the-operator-stopped": Case(
        spec(replicas=2),
        observed(replicas=0, phase=Phase.STOPPED),
        ["resume"],
        Reason.CONVERGING,
        writes=(write(ServiceField.STOP, 600),),
    ),
    "a-service-stopped-by-someone-else-is-not-started": Case(
        spec(replicas=2),
        observed(replicas=0, phase=Phase.STOPPED),
        [],
        Reason.STOPPED_OUTSIDE_OPERATOR,
    ),
    "billing-stop-is-never-fought": Case(
        spec(replicas=2),
        observed(phase=Phase.STOPPED, platform_stop="ARREARS_STOP"),
        [],
        Reason.PLATFORM_STOPPED,
        writes=(write(ServiceField.STOP, 600),),
    ),
    "qianfan-cannot-resume": Case(
        spec(replicas=2),
        observed(Cloud.BAIDU, replicas=0, phase=Phase.STOPPED),
        [],
        Reason.UNSUPPORTED_BY_CLOUD,
        writes=(write(ServiceField.STOP, 600),),
    ),
    "stop-at-in-the-future-is-scheduled-natively": Case(
        spec(stopSchedule={"stopAt": IN_ONE_HOUR.isoformat()}),
        observed(),
        ["set-schedule"],
        Reason.CONVERGING,
        check={"wake_at": IN_ONE_HOUR},
    ),
    "stop-at-already-scheduled-within-tolerance": Case(
        spec(stopSchedule={"stopAt": IN_ONE_HOUR.isoformat()}),
        observed(scheduled_stop=IN_ONE_HOUR + datetime.timedelta(seconds=30)),
        [],
        Reason.CONVERGED,
        ready=True,
    ),
    "empty-stop-schedule-clears-the-cloud-schedule": Case(
        spec(stopSchedule={}),
        observed(scheduled_stop=IN_ONE_HOUR),
        ["clear-schedule"],
        Reason.CONVERGING,
    ),
    "stop-at-passed-stops-a-running-service": Case(
        spec(stopSchedule={"stopAt": AN_HOUR_AGO.isoformat()}),
        observed(),
        ["stop"],
        Reason.CONVERGING,
    ),
    "stop-at-passed-and-stopped-is-a-scheduled-stop": Case(
        spec(stopSchedule={"stopAt": AN_HOUR_AGO.isoformat()}),
        observed(phase=Phase.STOPPED, replicas=0),
        [],
        Reason.SCHEDULED_STOP,
    ),
    "stop-at-is-emulated-on-qianfan": Case(
        spec(stopSchedule={"stopAt": AN_HOUR_AGO.isoformat()}),
        observed(Cloud.BAIDU),
        ["stop"],
        Reason.CONVERGING,
    ),
    "stop-at-on-qianfan-makes-no-schedule-call": Case(
        spec(stopSchedule={"stopAt": IN_ONE_HOUR.isoformat()}),
        observed(Cloud.BAIDU),
        [],
        Reason.CONVERGED,
        ready=True,
        check={"wake_at": IN_ONE_HOUR},
    ),
    "a-fired-stop-at-the-operator-scheduled-is-undone-when-moved-later": Case(
        spec(stopSchedule={"stopAt": IN_ONE_HOUR.isoformat()}),
        observed(phase=Phase.STOPPED, replicas=0, scheduled_stop=IN_ONE_HOUR),
        ["resume"],
        Reason.CONVERGING,
        writes=(write(ServiceField.SCHEDULE, 600, stop_at=NOW - datetime.timedelta(seconds=60)),),
    ),
    "a-stop-by-someone-else-is-not-undone-by-our-future-schedule": Case(
        spec(stopSchedule={"stopAt": IN_ONE_HOUR.isoformat()}),
        observed(phase=Phase.STOPPED, replicas=0, scheduled_stop=IN_ONE_HOUR),
        [],
        Reason.STOPPED_OUTSIDE_OPERATOR,
        writes=(write(ServiceField.SCHEDULE, 600, stop_at=IN_ONE_HOUR),),
    ),
    "a-refused-write-is-not-retried-at-once": Case(
        spec(replicas=3),
        observed(replicas=2),
        [],
        Reason.CONVERGING,
        writes=(write(ServiceField.REPLICAS, 2, succeeded=False),),
        check={"wake_at": NOW + datetime.timedelta(seconds=13)},
    ),
    "a-refused-write-is-retried-after-the-backoff": Case(
        spec(replicas=3),
        observed(replicas=2),
        ["scale"],
        Reason.CONVERGING,
        writes=(write(ServiceField.REPLICAS, 20, succeeded=False),),
    ),
    "a-native-stop-at-just-passed-is-left-to-the-cloud": Case(
        spec(stopSchedule={"stopAt": (NOW - datetime.timedelta(seconds=5)).isoformat()}),
        observed(),
        [],
        Reason.CONVERGING,
        check={"wake_at": NOW + datetime.timedelta(seconds=55)},
    ),
    "a-passed-native-stop-at-is-not-cleared-before-the-cloud-fires-it": Case(
        spec(stopSchedule={"stopAt": (NOW - datetime.timedelta(seconds=2)).isoformat()}),
        observed(scheduled_stop=NOW - datetime.timedelta(seconds=2)),
        [],
        Reason.CONVERGING,
    ),
    "inside-a-window-stops": Case(
        spec(stopSchedule=DAYTIME),
        observed(),
        ["stop"],
        Reason.CONVERGING,
        check={"next": ("Start", NOW.replace(hour=20))},
    ),
    "outside-a-window-resumes-even-if-stopped-elsewhere": Case(
        spec(stopSchedule=NIGHTS),
        observed(phase=Phase.STOPPED, replicas=0),
        ["resume"],
        Reason.CONVERGING,
        check={"next": ("Stop", NOW.replace(hour=20))},
    ),
    "outside-a-window-running-is-converged-and-shows-next-stop": Case(
        spec(stopSchedule=NIGHTS),
        observed(),
        [],
        Reason.CONVERGED,
        ready=True,
        check={"next": ("Stop", NOW.replace(hour=20)), "wake_at": NOW.replace(hour=20)},
    ),
    "window-in-a-time-zone": Case(
        # 12:00 UTC is 20:00 in Shanghai: the nightly window has just opened there.
        spec(stopSchedule={**NIGHTS, "timeZone": "Asia/Shanghai"}),
        observed(),
        ["stop"],
        Reason.CONVERGING,
    ),
    "a-cron-value-out-of-range-is-invalid-spec": Case(
        spec(stopSchedule={"windows": [{"stop": "99 20 * * *", "start": "0 8 * * *"}]}),
        observed(),
        [],
        Reason.INVALID_SPEC,
    ),
    "observe-only-reports-and-sends-nothing": Case(
        spec(replicas=3, policy={"mode": "ObserveOnly"}),
        observed(replicas=2),
        [],
        Reason.OBSERVE_ONLY,
        check={"proposed": ["scale"]},
    ),
    "observe-only-without-drift-is-converged": Case(
        spec(replicas=2, policy={"mode": "ObserveOnly"}),
        observed(replicas=2),
        [],
        Reason.CONVERGED,
        ready=True,
    ),
    "paused-reports-and-sends-nothing": Case(
        spec(replicas=3),
        observed(replicas=2),
        [],
        Reason.PAUSED,
        paused=True,
        check={"proposed": ["scale"]},
    ),
    "failed-cloud-service-is-reported": Case(
        spec(replicas=2), observed(phase=Phase.FAILED), [], Reason.CLOUD_SERVICE_FAILED
    ),
    "unknown-replicas-are-not-guessed": Case(
        spec(replicas=3), observed(replicas=None), [], Reason.CONVERGED, ready=True
    ),
    "resume-first-then-other-fields": Case(
        spec(
            replicas=3,
            rateLimit={"requestsPerSecond": 9, "scope": "PerInstance"},
            stopSchedule=NIGHTS,
        ),
        observed(phase=Phase.STOPPED, replicas=0, rps=1),
        ["resume"],
        Reason.CONVERGING,
    ),
    # --- tiers, skip dates and the wake override (docs/schedules.md) ---------------------
    "an-open-tier-window-scales-down-to-its-replicas": Case(
        spec(replicas=3, stopSchedule=DAYTIME_TIER),
        observed(replicas=3),
        ["scale"],
        Reason.CONVERGING,
        check={"replicas": 1, "next": ("Scale", NOW.replace(hour=20))},
    ),
    "held-at-a-tier-is-ready-and-says-so": Case(
        spec(replicas=3, stopSchedule=DAYTIME_TIER),
        observed(replicas=1),
        [],
        Reason.SCALED_BY_SCHEDULE,
        ready=True,
        check={"wake_at": NOW.replace(hour=20), "message": "holds the service at 1 replicas"},
    ),
    "a-closed-tier-window-scales-back-to-spec-replicas": Case(
        spec(replicas=3, stopSchedule=NIGHTS_TIER),
        observed(replicas=1),
        ["scale"],
        Reason.CONVERGING,
        check={"replicas": 3, "next": ("Scale", NOW.replace(hour=20))},
    ),
    "a-tier-opening-on-a-stopped-service-the-windows-own-resumes-it": Case(
        spec(replicas=3, stopSchedule=DAYTIME_TIER),
        observed(phase=Phase.STOPPED, replicas=0),
        ["resume"],
        Reason.CONVERGING,
    ),
    "a-skip-date-keeps-it-running-through-the-window": Case(
        spec(replicas=2, stopSchedule={**DAYTIME, "skipDates": ["2026-11-20/2026-11-23"]}),
        observed(replicas=2),
        [],
        Reason.CONVERGED,
        ready=True,
        check={"next": ("Stop", NOW.replace(day=24, hour=8))},
    ),
    "an-active-wake-override-keeps-it-running-in-a-window": Case(
        spec(replicas=2, stopSchedule=DAYTIME),
        observed(replicas=2),
        [],
        Reason.WAKE_OVERRIDE,
        ready=True,
        wake="2026-11-23T13:00:00Z",
        check={
            "wake_at": NOW.replace(hour=13),
            "next": ("Stop", NOW.replace(hour=13)),
            "wake_state": "Active",
        },
    ),
    "an-active-wake-override-lifts-a-tier": Case(
        spec(replicas=3, stopSchedule=DAYTIME_TIER),
        observed(replicas=1),
        ["scale"],
        Reason.CONVERGING,
        wake="2026-11-23T21:00:00+08:00",
        check={"replicas": 3, "next": ("Scale", NOW.replace(hour=13))},
    ),
    "an-active-wake-override-starts-a-service-a-window-stopped": Case(
        spec(replicas=2, stopSchedule=DAYTIME),
        observed(phase=Phase.STOPPED, replicas=0),
        ["resume"],
        Reason.CONVERGING,
        wake="2026-11-23T13:00:00Z",
    ),
    "suspend-wins-over-a-wake-override": Case(
        spec(replicas=2, suspend=True, stopSchedule=DAYTIME),
        observed(replicas=2),
        ["stop"],
        Reason.CONVERGING,
        wake="2026-11-23T13:00:00Z",
    ),
    "an-expired-wake-override-is-ignored-and-said": Case(
        spec(replicas=2, stopSchedule=DAYTIME),
        observed(replicas=2),
        ["stop"],
        Reason.CONVERGING,
        wake="2026-11-23T11:00:00Z",
        check={
            "message": "cloudinfer.dev/wake-until 2026-11-23T11:00:00Z has passed; ignored",
            "wake_state": "Expired",
        },
    ),
    "a-malformed-wake-override-is-ignored-and-said": Case(
        spec(replicas=2, stopSchedule=NIGHTS),
        observed(replicas=2),
        [],
        Reason.CONVERGED,
        ready=True,
        wake="tomorrow morning",
        check={"message": "'tomorrow morning' is not an RFC 3339 time", "wake_state": "Invalid"},
    ),
    "a-wake-override-without-an-offset-is-malformed": Case(
        spec(replicas=2, stopSchedule=DAYTIME),
        observed(replicas=2),
        ["stop"],
        Reason.CONVERGING,
        wake="2026-11-23T13:00:00",
        check={"wake_state": "Invalid"},
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_plan(case: Case) -> None:
    result = plan(
        PlanInput(
            spec=case.spec,
            observed=case.observed,
            observed_at=OBSERVED_AT,
            now=case.now,
            recent_writes=case.writes,
            paused=case.paused,
            wake_until=case.wake,
        )
    )
    assert [c.kind for c in result.changes] == case.kinds, result
    assert result.reason is case.reason, result.message
    assert result.ready is case.ready
    assert result.message
    if "proposed" in case.check:
        assert [c.kind for c in result.proposed] == case.check["proposed"]
    if "wake_at" in case.check:
        assert result.wake_at == case.check["wake_at"]
    if "next" in case.check:
        assert result.next_transition is not None
        assert (result.next_transition.action, result.next_transition.at) == case.check["next"]
    if "replicas" in case.check:
        assert [getattr(c, "replicas", None) for c in result.proposed] == [case.check["replicas"]]
    if "message" in case.check:
        assert case.check["message"] in result.message
    if "wake_state" in case.check:
        assert result.wake is not None
        assert result.wake.state == case.check["wake_state"]


def test_every_change_names_its_reason_for_the_journal() -> None:
    result = plan(PlanInput(spec(replicas=3), observed(replicas=2), OBSERVED_AT, NOW))
    assert result.changes[0].reason == "replicas 2 -> 3"
    assert [(d.field, d.desired, d.observed) for d in result.drift] == [
        (ServiceField.REPLICAS, "3", "2")
    ]
