"""ModelArts v1 simulator driven by huaweicloudsdkmodelarts (call_api) and the core Signer."""

# ruff: noqa: PLC0415 - the Huawei SDK is imported under a patched HOME (see conftest)

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cloudsim.control import SimControl
from cloudsim.server import RunningSim

from .conftest import HW_AK, HW_PROJECT, HW_SK, HW_TOKEN, HuaweiV1
from .shapes import seed, shape_mismatches

ONE = "/v1/{project_id}/services/{service_id}"
LIST = "/v1/{project_id}/services"


def _error(call: Any) -> tuple[int, str, str | None]:
    from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException

    with pytest.raises(ServiceResponseException) as err:
        call()
    return err.value.status_code, err.value.error_code, err.value.request_id


def _signed_get(
    server: RunningSim, path: str, *, sk: str = HW_SK, date: datetime | None = None
) -> httpx.Response:
    """Sign with the SDK's bare Signer (X-Sdk-Date preset) and send with httpx."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    stamp = (date or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    request = SdkRequest(
        method="GET",
        schema="http",
        host=server.endpoint,
        resource_path=path,
        query_params=[],
        header_params={
            "Content-Type": "application/json",
            "X-Project-Id": HW_PROJECT,
            "X-Sdk-Date": stamp,
        },
        body="",
    )
    Signer(BasicCredentials(HW_AK, sk, HW_PROJECT)).sign(request)
    return httpx.get(server.base_url + path, headers=request.header_params, trust_env=False)


# ----- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        ((HW_AK, "wrong-sk"), 401, "APIGW.0301"),
        (("HWUNKNOWNAK000000000", HW_SK), 401, "APIGW.0301"),
    ],
    ids=["wrong-sk", "unknown-ak"],
)
def test_bad_credentials_get_gateway_errors(
    huawei: SimControl, huawei_home: None, huawei_server: RunningSim, case: tuple[Any, ...]
) -> None:
    credentials, status, code = case
    client = HuaweiV1(huawei_server, *credentials)
    got = _error(lambda: client.call("GET", LIST))
    assert got[:2] == (status, code)
    assert got[2]  # X-Request-Id reaches the SDK exception


@pytest.mark.parametrize(
    ("age_minutes", "expected"),
    [(14, 200), (16, 401)],
    ids=["14-min-old-accepted", "16-min-old-expired"],
)
def test_sdk_date_window_is_15_minutes(
    huawei: SimControl,
    huawei_home: None,
    huawei_server: RunningSim,
    age_minutes: int,
    expected: int,
) -> None:
    huawei.add_service(account="h1", service_id="svc-1")
    response = _signed_get(
        huawei_server,
        f"/v1/{HW_PROJECT}/services/svc-1",
        date=datetime.now(UTC) - timedelta(minutes=age_minutes),
    )
    assert response.status_code == expected
    if expected == 401:
        assert response.json()["error_code"] == "APIGW.0303"


def test_server_clock_skew_expires_sdk_requests(huawei: SimControl, modelarts: HuaweiV1) -> None:
    huawei.set_clock(auth_skew=16 * 60)
    assert _error(lambda: modelarts.call("GET", LIST))[:2] == (401, "APIGW.0303")


def test_iam_token_is_an_alternative(huawei: SimControl, huawei_server: RunningSim) -> None:
    url = f"{huawei_server.base_url}/v1/{HW_PROJECT}/services"
    assert httpx.get(url, headers={"X-Auth-Token": HW_TOKEN}, trust_env=False).status_code == 200
    bad = httpx.get(url, headers={"X-Auth-Token": "nope"}, trust_env=False)
    assert (bad.status_code, bad.json()["error_code"]) == (401, "APIGW.0301")


def test_other_project_is_rejected(
    huawei: SimControl, huawei_home: None, huawei_server: RunningSim
) -> None:
    client = HuaweiV1(huawei_server, project="someone-elses-project")
    assert _error(lambda: client.call("GET", LIST))[:2] == (403, "ModelArts.0210")


# ----- seed replayed, listing, errors --------------------------------------------------------


def test_seed_002_detail_example_has_seed_structure(
    huawei: SimControl, modelarts: HuaweiV1
) -> None:
    example = seed("huawei_show_service.json")
    # The seed's service runs in a dedicated pool, so its detail carries cluster_id.
    sid = huawei.add_service(
        account="h1",
        service_id="f76f20ba-78f5-44e8-893a-37c8c600c02f",
        name="service-demo",
        extra={"cluster_id": "088458d9-5755-4110-97d8-1d21065ea10b"},
    )
    status, body = modelarts.call("GET", ONE, service_id=sid)
    assert status == 200
    assert shape_mismatches(example["response"], body) == []
    assert body["config"][0]["instance_count"] == 1


def test_v2_paths_are_not_simulated(
    huawei: SimControl, huawei_home: None, huawei_server: RunningSim
) -> None:
    from huaweicloudsdkmodelarts.v1 import ShowInferServiceRequest

    client = HuaweiV1(huawei_server).client
    got = _error(lambda: client.show_infer_service(ShowInferServiceRequest(service_id="x")))
    assert got[:2] == (404, "APIGW.0101")


@pytest.mark.parametrize(
    ("mode", "offsets"),
    [("page", [0, 1, 2]), ("item", [0, 4, 8])],
    ids=["offset-counts-pages", "offset-counts-items"],
)
def test_list_pagination_modes(
    huawei: SimControl, modelarts: HuaweiV1, mode: str, offsets: list[int]
) -> None:
    huawei.update_settings(huawei_offset_mode=mode)
    huawei.add_services(10, account="h1", name="lst")
    names: list[str] = []
    for offset in offsets:
        status, body = modelarts.call(
            "GET", LIST, query=[("offset", offset), ("limit", 4), ("order", "asc")]
        )
        assert status == 200 and body["total_count"] == 10
        assert all("config" not in item for item in body["services"])  # list items lack config
        names += [item["service_name"] for item in body["services"]]
    assert names == [f"lst-{i:05d}" for i in range(10)]


def test_missing_service_is_3502(huawei: SimControl, modelarts: HuaweiV1) -> None:
    assert _error(lambda: modelarts.call("GET", ONE, service_id="nope"))[:2] == (
        404,
        "ModelArts.3502",
    )


def test_throttling_is_429(
    huawei: SimControl, modelarts: HuaweiV1, huawei_server: RunningSim
) -> None:
    huawei.set_rate_limits(ListServices=3)
    assert [modelarts.call("GET", LIST)[0] for _ in range(3)] == [200, 200, 200]
    # The SDK's urllib3 retry setup drops 429 bodies; the status is what reaches it.
    assert _error(lambda: modelarts.call("GET", LIST))[0] == 429
    raw = httpx.get(
        f"{huawei_server.base_url}/v1/{HW_PROJECT}/services",
        headers={"X-Auth-Token": HW_TOKEN},
        trust_env=False,
    )
    assert (raw.status_code, raw.json()["error_code"]) == (429, "APIGW.0308")
    assert huawei.journal("ListServices")["ListServices"]["throttled"] == 2


# ----- state machines --------------------------------------------------------------------------


def _status(modelarts: HuaweiV1, sid: str) -> dict[str, Any]:
    return modelarts.call("GET", ONE, service_id=sid)[1]


def test_config_scale_deploys_then_runs(huawei: SimControl, modelarts: HuaweiV1) -> None:
    sid = huawei.add_service(account="h1", replicas=1)
    model_id = _status(modelarts, sid)["config"][0]["model_id"]
    config = [
        {
            "model_id": model_id,
            "weight": 100,
            "specification": "modelarts.vm.cpu.2u",
            "instance_count": 3,
        }
    ]
    status, body = modelarts.call("PUT", ONE, body={"config": config}, service_id=sid)
    assert status == 200 and isinstance(body["update_time"], int)
    detail = _status(modelarts, sid)
    assert (detail["status"], detail["progress"], detail["config"][0]["instance_count"]) == (
        "deploying",
        0,
        3,
    )
    assert _error(lambda: modelarts.call("PUT", ONE, body={"config": config}, service_id=sid))[
        :2
    ] == (400, "ModelArts.3519")
    huawei.advance(10)
    assert _status(modelarts, sid)["progress"] == 50
    huawei.advance(10)
    assert _status(modelarts, sid)["status"] == "running"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            [{"model_id": "m", "weight": 50, "specification": "s", "instance_count": 1}],
            "sum to 100",
        ),
        (
            [{"model_id": "m", "weight": 100, "specification": "s", "instance_count": 0}],
            "instance_count",
        ),
        ([{"model_id": "m", "weight": 100, "instance_count": 1}], "missing"),
    ],
    ids=["weights-not-100", "zero-instances", "missing-specification"],
)
def test_invalid_config_is_rejected(
    huawei: SimControl, modelarts: HuaweiV1, config: list[dict[str, Any]], fragment: str
) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

    sid = huawei.add_service(account="h1")
    with pytest.raises(ClientRequestException) as err:
        modelarts.call("PUT", ONE, body={"config": config}, service_id=sid)
    assert (err.value.status_code, err.value.error_code) == (400, "ModelArts.0107")
    assert fragment in err.value.error_msg


def test_stop_start_and_status_conflicts(huawei: SimControl, modelarts: HuaweiV1) -> None:
    sid = huawei.add_service(account="h1", replicas=2)
    assert _error(lambda: modelarts.call("PUT", ONE, body={"status": "running"}, service_id=sid))[
        :2
    ] == (400, "ModelArts.3519")
    # status wins over config when both are sent
    assert modelarts.call("PUT", ONE, body={"status": "stopped", "config": []}, service_id=sid) == (
        200,
        {},
    )
    assert _status(modelarts, sid)["status"] == "stopping"
    assert _error(lambda: modelarts.call("PUT", ONE, body={"status": "running"}, service_id=sid))[
        :2
    ] == (400, "ModelArts.3519")
    huawei.advance(10)
    assert _status(modelarts, sid)["status"] == "stopped"
    modelarts.call("PUT", ONE, body={"status": "running"}, service_id=sid)
    assert _status(modelarts, sid)["status"] == "deploying"
    huawei.advance(30)
    assert _status(modelarts, sid)["status"] == "running"


def test_schedule_counts_down_to_due_time_and_stops(
    huawei: SimControl, modelarts: HuaweiV1
) -> None:
    sid = huawei.add_service(account="h1")
    now = huawei.clock()["now"]
    schedule = [{"type": "stop", "time_unit": "HOURS", "duration": 2}]
    assert modelarts.call("PUT", ONE, body={"schedule": schedule}, service_id=sid) == (200, {})
    detail = _status(modelarts, sid)
    assert detail["schedule"] == schedule
    assert abs(detail["due_time"] - (now + 7200) * 1000) < 1000
    huawei.advance(7199)
    assert _status(modelarts, sid)["status"] == "running"
    huawei.advance(2)
    detail = _status(modelarts, sid)
    assert detail["status"] == "stopping" and "due_time" not in detail
    huawei.advance(10)
    assert _status(modelarts, sid)["status"] == "stopped"


def test_property_update_scales_one_model(huawei: SimControl, modelarts: HuaweiV1) -> None:
    sid = huawei.add_service(account="h1", replicas=1)
    model_id = _status(modelarts, sid)["config"][0]["model_id"]
    body = {
        "changed_property": "instance_count",
        "configs": [{"model_id": model_id, "changed_value": "4"}],
    }
    status, answer = modelarts.call("PUT", ONE + "/property", body=body, service_id=sid)
    assert status == 200 and isinstance(answer["update_time"], str)
    assert _status(modelarts, sid)["config"][0]["instance_count"] == 4
    # The service id is in the path, not the body: the journal keeps it for writes.
    (write,) = huawei.writes("UpdateServiceByProperty")
    assert write["path_params"] == {"pid": HW_PROJECT, "sid": sid}
    assert write["params"] == body


def test_arrears_freeze_blocks_start(huawei: SimControl, modelarts: HuaweiV1) -> None:
    sid = huawei.add_service(account="h1")
    huawei.platform_stop(sid, "arrears")
    huawei.advance(10)
    assert _status(modelarts, sid)["status"] == "stopped"
    assert _error(lambda: modelarts.call("PUT", ONE, body={"status": "running"}, service_id=sid))[
        :2
    ] == (403, "ModelArts.4116")


def test_fault_with_http_status_reaches_sdk(huawei: SimControl, modelarts: HuaweiV1) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ServerResponseException

    huawei.inject("ListServices", code="ModelArts.3501", message="deploy failed", count=1)
    with pytest.raises(ServerResponseException) as err:
        modelarts.call("GET", LIST)
    assert (err.value.status_code, err.value.error_code) == (500, "ModelArts.3501")
    assert modelarts.call("GET", LIST)[0] == 200
