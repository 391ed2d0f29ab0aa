"""TI-ONE simulator driven by tencentcloud-sdk-python-tione (typed client and CommonClient)."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models, tione_client

from cloudsim.control import SimControl
from cloudsim.server import RunningSim
from cloudsim.timefmt import iso_z

from .conftest import TC_ID, TC_KEY, TC_REGION, tencent_profile
from .shapes import seed, shape_mismatches

# The SDK warns when the server returns seed fields its models lack
# (docs/clouds/tencent-tione.md#seeds-and-sdks-disagree, item 5).
pytestmark = pytest.mark.filterwarnings("ignore:.*fileds are useless:UserWarning")


def _code(call: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as err:
        call()
    return str(err.value.code)


def _describe(tione: Any, service_id: str) -> Any:
    return tione.DescribeModelService(
        _req(models.DescribeModelServiceRequest, ServiceId=service_id)
    ).Service


def _req(cls: type, **fields: Any) -> Any:
    request = cls()
    request._deserialize(fields)
    return request


def _modify(tione: Any, **fields: Any) -> Any:
    return tione.ModifyModelService(_req(models.ModifyModelServiceRequest, **fields)).Service


# ----- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (TC_ID, "wrong-key", 0, "AuthFailure.SignatureFailure"),
        ("AKIDunknown000000000000000000000000000", TC_KEY, 0, "AuthFailure.SecretIdNotFound"),
        (TC_ID, TC_KEY, 301, "AuthFailure.SignatureExpire"),
        (TC_ID, TC_KEY, -301, "AuthFailure.SignatureExpire"),
    ],
    ids=[
        "wrong-secret-key",
        "unknown-secret-id",
        "server-clock-5min-ahead",
        "server-clock-5min-behind",
    ],
)
def test_bad_credentials_get_documented_auth_errors(
    tencent: SimControl, tencent_server: RunningSim, case: tuple[str, str, int, str]
) -> None:
    secret_id, secret_key, skew, code = case
    tencent.set_clock(auth_skew=skew)
    client = tione_client.TioneClient(
        Credential(secret_id, secret_key), TC_REGION, tencent_profile(tencent_server)
    )
    assert (
        _code(lambda: client.DescribeModelServiceGroups(models.DescribeModelServiceGroupsRequest()))
        == code
    )
    assert tencent.journal()["DescribeModelServiceGroups"]["errors"] == 1


def test_request_signed_six_minutes_ago_is_expired(tencent: SimControl, tione: Any) -> None:
    stale = time.time() - 360
    with mock.patch("tencentcloud.common.abstract_client.time.time", return_value=stale):
        code = _code(
            lambda: tione.DescribeModelServiceGroups(models.DescribeModelServiceGroupsRequest())
        )
    assert code == "AuthFailure.SignatureExpire"
    assert (
        tione.DescribeModelServiceGroups(models.DescribeModelServiceGroupsRequest()).TotalCount == 0
    )


def test_within_five_minutes_is_accepted(tencent: SimControl, tione: Any) -> None:
    tencent.set_clock(auth_skew=290)
    assert (
        tione.DescribeModelServiceGroups(models.DescribeModelServiceGroupsRequest()).TotalCount == 0
    )


# ----- seeds replayed ---------------------------------------------------------------------------


def test_seed_000_partial_config_example_has_seed_structure(
    tencent: SimControl, tione_common: CommonClient
) -> None:
    example = seed("tencent_partial_config.json")
    tencent.add_service(
        account="t1",
        service_id="ms-kxqfprc5-1",
        name="test-ls-onnx-fp16",
        schedule_stop_time=iso_z(time.time() + 86400),
    )
    answer = tione_common.call_json("ModifyModelServicePartialConfig", example["request"])
    assert shape_mismatches(example["response"], answer) == []
    service = answer["Response"]["Service"]
    assert service["ServiceInfo"]["ServiceLimit"] == {
        "EnableInstanceRpsLimit": True,
        "InstanceRpsLimit": 22,
    }
    # The deprecated top-level copies are null; ServiceInfo.* is authoritative.
    assert service["ServiceLimit"] is None and service["ScheduledAction"] is None
    assert service["Status"] == "Normal"  # no restart


def test_seed_001_describe_groups_example_has_seed_structure(
    tencent: SimControl, tione_common: CommonClient
) -> None:
    example = seed("tencent_describe_groups.json")
    tencent.add_service(account="t1", name="llm_test", status="Stopped", replicas=1)
    answer = tione_common.call_json("DescribeModelServiceGroups", example["request"])
    assert shape_mismatches(example["response"], answer) == []
    group = answer["Response"]["ServiceGroups"][0]
    assert group["Services"][0]["ServiceInfo"]["OldReplicas"] == 1
    assert group["Status"] == "Stopped"


# ----- listing ----------------------------------------------------------------------------------


def test_pagination_walks_every_group_once(tencent: SimControl, tione: Any) -> None:
    tencent.add_services(25, account="t1", name="pg")
    seen: list[str] = []
    offset = 0
    while True:
        page = tione.DescribeModelServiceGroups(
            _req(models.DescribeModelServiceGroupsRequest, Offset=offset, Limit=10, Order="ASC")
        )
        assert page.TotalCount == 25
        seen += [g.ServiceGroupId for g in page.ServiceGroups]
        offset += 10
        if offset >= page.TotalCount:
            break
    assert len(seen) == len(set(seen)) == 25


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Limit": 101}, "InvalidParameterValue"),
        ({"Order": "SIDEWAYS"}, "InvalidParameterValue"),
        ({"Filters": [{"Name": "Colour", "Values": ["x"]}]}, "InvalidParameterValue"),
    ],
    ids=["limit-above-100", "bad-order", "unknown-filter-name"],
)
def test_list_rejects_invalid_parameters(
    tencent: SimControl, tione_common: CommonClient, fields: dict[str, Any], code: str
) -> None:
    assert _code(lambda: tione_common.call_json("DescribeModelServiceGroups", fields)) == code


def test_filters_by_group_name_fuzzy_and_negative(tencent: SimControl, tione: Any) -> None:
    tencent.add_service(account="t1", name="alpha-chat")
    tencent.add_service(account="t1", name="beta-embed")
    fuzzy = [{"Name": "ServiceGroupName", "Values": ["chat"], "Fuzzy": True}]
    page = tione.DescribeModelServiceGroups(
        _req(models.DescribeModelServiceGroupsRequest, Filters=fuzzy)
    )
    assert [g.ServiceGroupName for g in page.ServiceGroups] == ["alpha-chat"]
    negative = [{"Name": "ServiceGroupName", "Values": ["alpha-chat"], "Negative": True}]
    page = tione.DescribeModelServiceGroups(
        _req(models.DescribeModelServiceGroupsRequest, Filters=negative)
    )
    assert [g.ServiceGroupName for g in page.ServiceGroups] == ["beta-embed"]


def test_unknown_service_and_unknown_parameter(
    tencent: SimControl, tione: Any, tione_common: CommonClient
) -> None:
    assert _code(lambda: _describe(tione, "ms-nothere-1")) == "ResourceNotFound"
    assert (
        _code(
            lambda: tione_common.call_json("DescribeModelService", {"ServiceId": "x", "Colour": 1})
        )
        == "UnknownParameter"
    )
    assert _code(lambda: tione_common.call_json("DescribeModelServices", {})) == "InvalidAction"


# ----- PartialConfig availability -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code"),
    [("available", None), ("removed", "InvalidAction")],
    ids=["available", "removed"],
)
def test_partial_config_switchable_per_account(
    tencent: SimControl, tione_common: CommonClient, mode: str, code: str | None
) -> None:
    sid = tencent.add_service(account="t1")
    tencent.edit_account("t1", partial_config=mode)
    body = {
        "ServiceId": sid,
        "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 5},
    }
    if code is None:
        limit = tione_common.call_json("ModifyModelServicePartialConfig", body)["Response"][
            "Service"
        ]["ServiceInfo"]["ServiceLimit"]
        assert limit["InstanceRpsLimit"] == 5
    else:
        assert (
            _code(lambda: tione_common.call_json("ModifyModelServicePartialConfig", body)) == code
        )
        assert tencent.service(sid)["internal"]["rps_limit"] == 0


def test_one_partial_config_sets_the_rps_limit_and_the_schedule_together(
    tencent: SimControl, tione_common: CommonClient, tione: Any
) -> None:
    """Seed 000: `ScheduledAction` and `ServiceLimit` are both optional parameters of one
    request; the operator sends both in one call when both differ (issue 19)."""
    sid = tencent.add_service(account="t1")
    when = iso_z(time.time() + 2 * 86400)
    body = {
        "ServiceId": sid,
        "ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 7},
        "ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": when},
    }
    answered = tione_common.call_json("ModifyModelServicePartialConfig", body)["Response"]
    info = answered["Service"]["ServiceInfo"]
    assert info["ServiceLimit"] == {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 7}
    assert (
        info["ScheduledAction"]["ScheduleStop"],
        info["ScheduledAction"]["ScheduleStopTime"],
    ) == (
        True,
        when,
    )
    assert answered["Service"]["Status"] == "Normal", "PartialConfig does not restart"
    read = _describe(tione, sid).ServiceInfo  # what a later read shows, through the typed SDK
    assert (read.ServiceLimit.InstanceRpsLimit, read.ScheduledAction.ScheduleStop) == (7, True)
    writes = tencent.writes("ModifyModelServicePartialConfig")
    assert [w["params"] for w in writes if w["params"].get("ServiceId") == sid] == [body]
    # Clearing both is one call too; the schedule flag alone disables the stop.
    clear = {
        "ServiceId": sid,
        "ServiceLimit": {"EnableInstanceRpsLimit": False},
        "ScheduledAction": {"ScheduleStop": False},
    }
    info = tione_common.call_json("ModifyModelServicePartialConfig", clear)["Response"]["Service"][
        "ServiceInfo"
    ]
    assert info["ServiceLimit"]["EnableInstanceRpsLimit"] is False
    assert info["ScheduledAction"]["ScheduleStop"] is False


# ----- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "limit"),
    [
        ("DescribeModelServiceGroups", 20),
        ("DescribeModelService", 50),
        ("ModifyModelServicePartialConfig", 20),
    ],
    ids=["groups-20-per-s", "describe-50-per-s", "partial-config-20-per-s"],
)
def test_burst_above_limit_is_throttled_at_documented_rate(
    tencent: SimControl, tione_common: CommonClient, action: str, limit: int
) -> None:
    sid = tencent.add_service(account="t1")
    body: dict[str, Any] = {} if action == "DescribeModelServiceGroups" else {"ServiceId": sid}
    if action == "ModifyModelServicePartialConfig":
        body["ServiceLimit"] = {"EnableInstanceRpsLimit": False}

    def burst(n: int) -> int:
        throttled = 0
        for _ in range(n):
            try:
                tione_common.call_json(action, body)
            except TencentCloudSDKException as err:
                assert err.code == "RequestLimitExceeded"
                throttled += 1
        return throttled

    assert burst(limit + 5) == 5  # frozen clock: exactly one second's worth passes
    tencent.advance(0.5)
    assert burst(limit) == limit - limit // 2  # half a second refills half the bucket
    tencent.advance(1)
    assert burst(limit) == 0
    assert tencent.journal(action)[action]["throttled"] == 5 + limit - limit // 2


# ----- state machines --------------------------------------------------------------------------


def test_scale_passes_through_transitional_states(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=1)
    service = _modify(tione, ServiceId=sid, ServiceAction="SCALE", Replicas=3)
    assert (
        service.Status,
        service.ServiceInfo.Replicas,
        service.ServiceInfo.Status.ReadyReplicas,
    ) == ("Pending", 3, 1)
    assert (
        _code(lambda: _modify(tione, ServiceId=sid, ServiceAction="SCALE", Replicas=4))
        == "ResourceInUse"
    )
    tencent.advance(10)
    assert _describe(tione, sid).Status == "Waiting"
    tencent.advance(10)
    info = _describe(tione, sid)
    assert (
        info.Status,
        info.ServiceInfo.Status.ReadyReplicas,
        info.ServiceInfo.Status.UnavailableReplicas,
    ) == ("Normal", 3, 0)


def test_service_action_ignores_other_fields(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=1)
    service = _modify(
        tione,
        ServiceId=sid,
        ServiceAction="SCALE",
        Replicas=2,
        ServiceLimit={"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 9},
    )
    assert service.ServiceInfo.ServiceLimit.EnableInstanceRpsLimit is False
    assert service.ServiceInfo.Replicas == 2


def test_stop_then_resume_restores_old_replicas(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=2)
    assert _modify(tione, ServiceId=sid, ServiceAction="STOP").Status == "Stopping"
    tencent.advance(10)
    stopped = _describe(tione, sid)
    assert (stopped.Status, stopped.ServiceInfo.Replicas, stopped.ServiceInfo.OldReplicas) == (
        "Stopped",
        0,
        2,
    )
    assert (
        _code(lambda: _modify(tione, ServiceId=sid, ServiceAction="SCALE", Replicas=1))
        == "UnsupportedOperation"
    )
    assert _modify(tione, ServiceId=sid, ServiceAction="RESUME").Status == "Pending"
    tencent.advance(30)
    resumed = _describe(tione, sid)
    assert (
        resumed.Status,
        resumed.ServiceInfo.Replicas,
        resumed.ServiceInfo.Status.ReadyReplicas,
    ) == ("Normal", 2, 2)


def test_scheduled_stop_fires_on_virtual_clock(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=1)
    now = tencent.clock()["now"]
    when = iso_z(now + 3600)
    service = _modify(
        tione, ServiceId=sid, ScheduledAction={"ScheduleStop": True, "ScheduleStopTime": when}
    )
    assert service.ServiceInfo.ScheduledAction.ScheduleStop is True
    tencent.advance(60)  # the update's rolling restart settles; the schedule stays armed
    assert _describe(tione, sid).Status == "Normal"
    tencent.advance(3600 - 60 + 1)
    assert _describe(tione, sid).Status == "Stopping"
    tencent.advance(10)
    fired = _describe(tione, sid)
    assert fired.Status == "Stopped"
    # Fired schedules read back disarmed, time kept (as in the tccli example).
    assert (
        fired.ServiceInfo.ScheduledAction.ScheduleStop,
        fired.ServiceInfo.ScheduledAction.ScheduleStopTime,
    ) == (False, when)


def test_arrears_stop_blocks_resume(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=2)
    tencent.platform_stop(sid, "arrears")
    tencent.advance(10)
    service = _describe(tione, sid)
    assert (service.Status, service.BusinessStatus) == ("Stopped", "ARREARS_STOP")
    assert (
        _code(lambda: _modify(tione, ServiceId=sid, ServiceAction="RESUME"))
        == "OperationDenied.BalanceInsufficient"
    )
    tencent.edit_service(sid, business_status="CREATE_SUCCEED")  # the bill is paid
    assert _modify(tione, ServiceId=sid, ServiceAction="RESUME").ServiceInfo.Replicas == 2


def test_console_edit_creates_drift(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1", replicas=2)
    tencent.edit_service(sid, replicas=5, ready=5, rps_enabled=True, rps_limit=40)
    service = _describe(tione, sid)
    assert service.ServiceInfo.Replicas == 5
    assert service.ServiceInfo.ServiceLimit.InstanceRpsLimit == 40


# ----- journal and faults ----------------------------------------------------------------------


def test_journal_records_each_write_with_request_id_and_params(
    tencent: SimControl, tione: Any
) -> None:
    sid = tencent.add_service(account="t1", replicas=1)
    request = _req(
        models.ModifyModelServiceRequest, ServiceId=sid, ServiceAction="SCALE", Replicas=2
    )
    response = tione.ModifyModelService(request)
    writes = tencent.writes("ModifyModelService")
    assert len(writes) == 1
    assert writes[0]["request_id"] == response.RequestId
    assert writes[0]["params"] == {"ServiceId": sid, "ServiceAction": "SCALE", "Replicas": 2}
    _describe(tione, sid)
    assert tencent.writes("DescribeModelService") == []


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"kind": "error", "code": "InternalError"}, "InternalError"),
        ({"kind": "error", "code": "FailedOperation.Processing"}, "FailedOperation.Processing"),
        ({"kind": "html"}, "ServerNetworkError"),
        ({"kind": "reset"}, "ClientNetworkError"),
        ({"kind": "hang", "latency": 3}, "ClientNetworkError"),
    ],
    ids=["internal-error", "processing", "html-502", "connection-reset", "hang-until-timeout"],
)
def test_faults_reach_the_sdk_once_by_count(
    tencent: SimControl, tencent_server: RunningSim, spec: dict[str, Any], code: str
) -> None:
    sid = tencent.add_service(account="t1")
    tencent.inject("DescribeModelService", count=1, **spec)
    client = tione_client.TioneClient(
        Credential(TC_ID, TC_KEY), TC_REGION, tencent_profile(tencent_server, timeout=1)
    )
    assert _code(lambda: _describe(client, sid)) == code
    assert _describe(client, sid).ServiceId == sid  # count=1: the next call is clean
    # Every firing is journaled (a reset before its connection drops, with no HTTP status).
    entries = tencent.journal("DescribeModelService")["DescribeModelService"]["entries"]
    want = spec.get("code", f"fault:{spec['kind']}")
    assert [e["error_code"] for e in entries] == [want, None]
    if spec["kind"] == "reset":
        assert entries[0]["http_status"] == 0


def test_malformed_body_breaks_the_typed_client(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1")
    tencent.inject("DescribeModelService", "malformed", count=1)
    with pytest.raises(TencentCloudSDKException):
        _describe(tione, sid)


def test_latency_fault_delays_the_answer(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1")
    tencent.inject("DescribeModelService", "latency", latency=0.3, count=1)
    started = time.monotonic()
    assert _describe(tione, sid).ServiceId == sid
    assert time.monotonic() - started >= 0.3


def test_probabilistic_faults_repeat_with_the_seed(tencent: SimControl, tione: Any) -> None:
    sid = tencent.add_service(account="t1")

    def pattern() -> list[bool]:
        tencent.clear_faults()
        tencent.inject("DescribeModelService", probability=0.5)
        outcome = []
        for _ in range(16):
            try:
                _describe(tione, sid)
                outcome.append(True)
            except TencentCloudSDKException:
                outcome.append(False)
        return outcome

    tencent.reset()
    tencent.add_account(name="t1", secret_id=TC_ID, secret_key=TC_KEY)
    tencent.add_service(account="t1", service_id=sid)
    first = pattern()
    tencent.reset()
    tencent.add_account(name="t1", secret_id=TC_ID, secret_key=TC_KEY)
    tencent.add_service(account="t1", service_id=sid)
    assert pattern() == first
    assert 0 < first.count(False) < 16
