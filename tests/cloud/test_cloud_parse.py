"""Translating each cloud's service objects: every documented status has a phase, odd but
documented field combinations read correctly, and malformed payloads name the culprit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cloudinfer.cloud.baidu.parse import observed_service as baidu_service
from cloudinfer.cloud.errors import MalformedResponseError
from cloudinfer.cloud.huawei.parse import Deployment
from cloudinfer.cloud.huawei.parse import observed_service as huawei_service
from cloudinfer.cloud.model import (
    InstanceReplicas,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
)
from cloudinfer.cloud.payload import Payload
from cloudinfer.cloud.tencent.parse import CAPABILITIES as TENCENT_CAPABILITIES
from cloudinfer.cloud.tencent.parse import observed_service as tencent_service


def _payload(data: dict[str, Any]) -> Payload:
    return Payload(data, "test", "Describe", "req-1")


def _tencent(**info: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "ServiceId": "ms-1-1",
        "Status": "Normal",
        "ServiceInfo": {"Replicas": 2, "Status": {"ReadyReplicas": 2}},
    }
    service["ServiceInfo"].update(info)
    return service


def _tencent_observed(data: dict[str, Any]) -> Any:
    return tencent_service(_payload(data), capabilities=TENCENT_CAPABILITIES)


# Every status docs/clouds/tencent-tione.md#field-map lists, with the phase we chose.
TENCENT_PHASES = {
    "CREATING": Phase.TRANSITIONING,
    "CREATE_FAILED": Phase.FAILED,
    "TIMEOUT_EXCEPTION": Phase.FAILED,
    "Normal": Phase.RUNNING,
    "Stopped": Phase.STOPPED,
    "Stopping": Phase.TRANSITIONING,
    "Abnormal": Phase.FAILED,
    "Pending": Phase.TRANSITIONING,
    "Waiting": Phase.TRANSITIONING,
    "SomethingNew": Phase.UNKNOWN,
}
HUAWEI_PHASES = {
    "running": Phase.RUNNING,
    "deploying": Phase.TRANSITIONING,
    "concerning": Phase.RUNNING,
    "failed": Phase.FAILED,
    "stopped": Phase.STOPPED,
    "finished": Phase.STOPPED,
    "stopping": Phase.TRANSITIONING,
    "deleting": Phase.TRANSITIONING,
    "pending": Phase.TRANSITIONING,
    "waiting": Phase.TRANSITIONING,
    "somethingNew": Phase.UNKNOWN,
}
BAIDU_PHASES = {
    "New": Phase.TRANSITIONING,
    "Deploying": Phase.TRANSITIONING,
    "Serving": Phase.RUNNING,
    "Failed": Phase.FAILED,
    "Stopped": Phase.STOPPED,
    "Done": Phase.RUNNING,
    "SomethingNew": Phase.UNKNOWN,
}


@pytest.mark.parametrize(("status", "phase"), TENCENT_PHASES.items(), ids=list(TENCENT_PHASES))
def test_tencent_status_phase(status: str, phase: Phase) -> None:
    observed = _tencent_observed({**_tencent(), "Status": status})
    assert (observed.phase, observed.raw_status) == (phase, status)


@pytest.mark.parametrize(("status", "phase"), HUAWEI_PHASES.items(), ids=list(HUAWEI_PHASES))
def test_huawei_status_phase(status: str, phase: Phase) -> None:
    item = _payload({"service_id": "s", "status": status})
    observed = huawei_service(item, Deployment(config=({"model_id": "m", "instance_count": 2},)))
    assert (observed.phase, observed.raw_status) == (phase, status)


@pytest.mark.parametrize(("status", "phase"), BAIDU_PHASES.items(), ids=list(BAIDU_PHASES))
def test_baidu_status_phase(status: str, phase: Phase) -> None:
    observed = baidu_service(_payload({"serviceId": "svco-1", "runStatus": status}))
    assert (observed.phase, observed.raw_status) == (phase, status)


def _qianfan(status: str = "Serving", **fields: Any) -> dict[str, Any]:
    return {
        "serviceId": "svco-1",
        "runStatus": status,
        "resourceConfig": {"type": "GPU-I-2", "replicasCount": 4, "qps": 5},
        "computeUnits": [
            {"instanceId": "cu-a", "deploymentReplicasCount": 1},
            {"instanceId": "cu-b", "deploymentReplicasCount": 3},
        ],
        **fields,
    }


@pytest.mark.parametrize(
    ("status", "ready"),
    [("Serving", (1, 3)), ("Stopped", (0, 0)), ("Deploying", (None, None))],
)
def test_baidu_reports_each_compute_unit_instance(
    status: str, ready: tuple[int | None, int | None]
) -> None:
    observed = baidu_service(_payload(_qianfan(status)))
    assert observed.instances == (
        InstanceReplicas(instance_id="cu-a", replicas=Replicas(desired=1, ready=ready[0])),
        InstanceReplicas(instance_id="cu-b", replicas=Replicas(desired=3, ready=ready[1])),
    )
    # Until an instance is chosen, replicas are the service's own (its resource block).
    assert (observed.replicas.desired, observed.instance_id) == (4, None)


def test_baidu_without_compute_units_has_no_instances_but_scales_per_instance() -> None:
    observed = baidu_service(_payload(_qianfan(computeUnits=[])))
    assert observed.instances == ()
    assert observed.replicas.desired == 4


def test_baidu_instance_without_replica_count_is_malformed() -> None:
    units = [{"instanceId": "cu-a"}]
    with pytest.raises(MalformedResponseError) as caught:
        baidu_service(_payload(_qianfan(computeUnits=units)))
    assert "deploymentReplicasCount" in caught.value.message


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ({"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 22}, 22.0),
        ({"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 0}, None),
        ({"EnableInstanceRpsLimit": False, "InstanceRpsLimit": 1000000}, None),
        (None, None),
    ],
    ids=["enabled", "zero-means-no-limit", "disabled-keeps-a-value", "absent"],
)
def test_tencent_rate_limit(limit: dict[str, Any] | None, expected: float | None) -> None:
    observed = _tencent_observed(_tencent(ServiceLimit=limit))
    if expected is None:
        assert observed.rate_limit is None
    else:
        assert observed.rate_limit == RateLimitSetting(
            rps=expected, scope=RateLimitScope.PER_INSTANCE
        )


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            {"ScheduleStop": True, "ScheduleStopTime": "2022-01-26T19:46:22+08:00"},
            datetime(2022, 1, 26, 11, 46, 22, tzinfo=UTC),
        ),
        (
            {"ScheduleStop": True, "ScheduleStopTime": "2022-11-28T03:59:12Z"},
            datetime(2022, 11, 28, 3, 59, 12, tzinfo=UTC),
        ),
        ({"ScheduleStop": False, "ScheduleStopTime": "2022-11-28T03:59:12Z"}, None),
        (None, None),
    ],
    ids=["china-offset", "utc-z", "disabled-with-a-time", "absent"],
)
def test_tencent_schedule_compares_instants(
    action: dict[str, Any] | None, expected: datetime | None
) -> None:
    assert _tencent_observed(_tencent(ScheduledAction=action)).scheduled_stop == expected


@pytest.mark.parametrize(
    "business", ["ARREARS_STOP", "WHITELIST_STOP"], ids=["arrears", "whitelist"]
)
def test_tencent_platform_stops(business: str) -> None:
    observed = _tencent_observed({**_tencent(), "BusinessStatus": business, "Status": "Stopped"})
    assert observed.platform_stop == business


def test_huawei_due_time_and_update_time_are_epoch_millis() -> None:
    item = _payload(
        {
            "service_id": "s",
            "status": "running",
            "due_time": 1700000000000,
            "update_time": "1700000001000",
            "transition_at": 1700000002000,
        }
    )
    observed = huawei_service(item, None)
    assert observed.scheduled_stop == datetime.fromtimestamp(1700000000, UTC)
    assert observed.updated_at == datetime.fromtimestamp(1700000002, UTC)
    assert observed.replicas.desired is None, "no detail read yet"


@pytest.mark.parametrize(
    ("data", "culprit"),
    [
        ({"ServiceId": "ms-1-1", "Status": "Normal"}, "ServiceInfo"),
        ({**_tencent(), "ServiceId": 7}, "ServiceId"),
        (_tencent(Replicas="two"), "ServiceInfo.Replicas"),
        (_tencent(ScheduledAction={"ScheduleStop": "yes"}), "ScheduledAction.ScheduleStop"),
        (
            _tencent(ScheduledAction={"ScheduleStop": True, "ScheduleStopTime": "soon"}),
            "ScheduleStopTime",
        ),
    ],
    ids=["no-service-info", "id-not-a-string", "replicas-not-int", "flag-not-bool", "bad-time"],
)
def test_malformed_payloads_name_the_field_and_keep_the_request_id(
    data: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        _tencent_observed(data)
    assert culprit in caught.value.message
    assert caught.value.request_id == "req-1"
