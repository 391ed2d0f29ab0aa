"""`plan` rebuilds the planner's input from status: the observation the operator wrote into
status.observed and status.capabilities must give the same plan as the observation itself."""

from __future__ import annotations

import datetime

import pytest

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
from cloudinfer.kubectl.planning import AccountFacts, observed_service, plan_service
from cloudinfer.reconcile import status as st
from cloudinfer.reconcile.planner import PlanInput, plan

NOW = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
CAPS = {Cloud.TENCENT: TENCENT, Cloud.HUAWEI: HUAWEI, Cloud.BAIDU: BAIDU}
SPECS = [
    {"replicas": 3},
    {"replicas": 1, "rateLimit": {"requestsPerSecond": 5, "scope": "PerInstance"}},
    {"rateLimit": {"requestsPerSecond": 5, "scope": "PerService"}},
    {"suspend": True},
    {"stopSchedule": {"stopAt": "2030-01-02T05:00:00Z"}},
    {"stopSchedule": {"windows": [{"stop": "0 3 * * *", "start": "30 3 * * *"}]}},
    {"replicas": 2, "policy": {"mode": "ObserveOnly"}},
]
PHASES = [Phase.RUNNING, Phase.STOPPED, Phase.TRANSITIONING, Phase.FAILED]


@pytest.mark.parametrize("cloud", list(Cloud))
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("extra", SPECS)
def test_the_plan_from_status_equals_the_plan_from_the_observation(
    cloud: Cloud, phase: Phase, extra: dict[str, object]
) -> None:
    observed = ObservedService(
        cloud=cloud, service_id="svc-1", replicas=Replicas(desired=2, ready=2),
        rate_limit=RateLimitSetting(rps=9, scope=RateLimitScope.PER_INSTANCE),
        phase=phase, raw_status=phase.value.upper(), capabilities=CAPS[cloud],
        message="oops" if phase is Phase.FAILED else None,
    )  # fmt: skip
    raw_spec = {"accountRef": {"name": "acct"}, "serviceId": "svc-1", **extra}
    status = {
        "provider": cloud.value,
        "observed": st.observed_block(observed),
        "capabilities": st.capabilities(observed.capabilities),
        "conditions": [{"type": "Ready", "status": "False", "reason": "Converging"}],
    }
    inputs = PlanInput(
        spec=InferenceServiceSpec.model_validate(raw_spec), observed=observed,
        observed_at=NOW - datetime.timedelta(seconds=3), now=NOW, generation=4, account="u/1/7",
    )  # fmt: skip
    rebuilt = observed_service(cloud, "svc-1", status)
    assert rebuilt is not None
    assert plan(inputs) == plan(
        PlanInput(**{**inputs.__dict__, "observed": rebuilt})  # type: ignore[arg-type]
    )

    obj = {
        "metadata": {"namespace": "ns", "name": "svc", "generation": 4},
        "spec": raw_spec,
        "status": status,
    }
    facts = AccountFacts(cloud, "u/1/7", NOW - datetime.timedelta(seconds=3))
    viewed = plan_service(obj, facts, NOW)
    assert viewed.plan is not None
    assert viewed.plan.proposed == plan(inputs).proposed


def test_a_platform_stop_is_read_back_from_the_ready_reason() -> None:
    observed = ObservedService(
        cloud=Cloud.TENCENT, service_id="svc-1", replicas=Replicas(desired=1),
        phase=Phase.STOPPED, raw_status="Stopped", platform_stop="ARREARS_STOP",
        capabilities=TENCENT,
    )  # fmt: skip
    status = {
        "observed": st.observed_block(observed),
        "capabilities": st.capabilities(TENCENT),
        "conditions": [{"type": "Ready", "status": "False", "reason": "PlatformStopped"}],
    }
    assert observed_service(Cloud.TENCENT, "svc-1", status) == observed


def test_no_plan_when_the_operator_stops_before_planning() -> None:
    obj = {
        "metadata": {"namespace": "ns", "name": "svc"},
        "spec": {"accountRef": {"name": "acct"}, "serviceId": "svc-1", "replicas": 2},
        "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "AccountNotReady", "message": "gone"}
        ]},
    }  # fmt: skip
    viewed = plan_service(obj, AccountFacts(None, None, None), NOW)
    assert viewed.plan is None
    assert viewed.not_planned == "the operator stops before planning: AccountNotReady: gone"
