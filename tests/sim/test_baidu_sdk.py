"""Qianfan console simulator driven by qianfan's call_action and bce-python-sdk's signer."""

# ruff: noqa: PLC0415 - qianfan is imported lazily (see conftest)

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.utils import get_canonical_time

from cloudsim.control import SimControl
from cloudsim.server import RunningSim

from .conftest import BD_AK, BD_SK, BD_UNIT
from .shapes import seed, shape_mismatches


def _bce_post(
    server: RunningSim,
    action: str,
    body: dict[str, Any],
    *,
    ak: str = BD_AK,
    sk: str = BD_SK,
    order: list[bytes] | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "host": server.endpoint,
        "content-type": "application/json",
        "x-bce-date": get_canonical_time(ts).decode(),
    }
    headers["authorization"] = bce_v1_signer.sign(
        BceCredentials(ak, sk),
        b"POST",
        b"/v2/service",
        {k.encode(): v for k, v in headers.items()},
        {b"Action": action},
        timestamp=ts,
        expiration_in_seconds=300,
        headers_to_sign=order or [b"host", b"content-type", b"x-bce-date"],
    ).decode()
    return httpx.post(
        f"{server.base_url}/v2/service",
        params={"Action": action},
        headers=headers,
        content=json.dumps(body),
        trust_env=False,
    )


def _error(call: Any) -> tuple[int, str]:
    from qianfan.errors import RequestError

    with pytest.raises(RequestError) as err:
        call()
    # RequestError keeps the response body only inside its message.
    match = re.search(r"response body: '(\{.*?\})'", str(err.value))
    assert match is not None
    body = json.loads(match[1])
    return err.value.status_code, body["code"]


# ----- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (BD_AK, "wrong", 0, (400, "SignatureDoesNotMatch")),
        ("unknownak00000000000000000", BD_SK, 0, (403, "InvalidAccessKeyId")),
        (BD_AK, BD_SK, 301, (400, "RequestExpired")),
    ],
    ids=["wrong-sk", "unknown-ak", "signature-older-than-300s"],
)
def test_bad_signatures_get_bce_errors(
    baidu: SimControl, baidu_server: RunningSim, case: tuple[Any, ...]
) -> None:
    ak, sk, skew, expected = case
    baidu.set_clock(auth_skew=skew)
    response = _bce_post(baidu_server, "DescribeServices", {}, ak=ak, sk=sk)
    assert (response.status_code, response.json()["code"]) == expected
    assert response.headers["x-bce-error-code"] == expected[1]


def test_qianfan_sdk_with_wrong_key_is_rejected(baidu: SimControl, qianfan_console: Any) -> None:
    import qianfan

    config = qianfan.get_config()
    good = config.SECRET_KEY
    config.SECRET_KEY = "wrong"
    try:
        assert _error(lambda: qianfan_console("/v2/service", "DescribeServices", {})) == (
            400,
            "SignatureDoesNotMatch",
        )
    finally:
        config.SECRET_KEY = good
    assert (
        qianfan_console("/v2/service", "DescribeServices", {}).body["result"]["serviceList"] == []
    )


@pytest.mark.parametrize(
    "order",
    [[b"host", b"content-type", b"x-bce-date"], [b"x-bce-date", b"content-type", b"host"]],
    ids=["sorted", "reversed"],
)
def test_signed_header_order_does_not_matter(
    baidu: SimControl, baidu_server: RunningSim, order: list[bytes]
) -> None:
    assert _bce_post(baidu_server, "DescribeServices", {}, order=order).status_code == 200


def test_body_is_not_signed(baidu: SimControl, baidu_server: RunningSim) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    ts = int(time.time())
    first = _bce_post(baidu_server, "DescribeService", {"serviceId": sid}, timestamp=ts)
    other = _bce_post(baidu_server, "DescribeService", {"serviceId": "svco-other"}, timestamp=ts)
    assert first.request.headers["authorization"] == other.request.headers["authorization"]
    assert (first.status_code, other.status_code) == (200, 404)


# ----- seed replayed and listing ----------------------------------------------------------------


def test_seed_003_scale_example_has_seed_structure(baidu: SimControl, qianfan_console: Any) -> None:
    example = seed("baidu_scale_service.json")
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1, "xxx": 1})
    answer = qianfan_console(
        "/v2/service", "ScaleService", {**example["request"], "serviceId": sid}
    )
    assert shape_mismatches(example["response"], answer.body) == []
    assert answer.body["result"] is True
    units = baidu.service(sid)["service"]["computeUnits"]
    assert units == [{"instanceId": BD_UNIT, "deploymentReplicasCount": 1}]  # 0 removed "xxx"


def test_describe_services_pages_with_marker_and_clamps_max_keys(
    baidu: SimControl, qianfan_console: Any
) -> None:
    baidu.add_services(150, account="b1", name="svc", units={BD_UNIT: 0})
    page = qianfan_console("/v2/service", "DescribeServices", {"maxKeys": 1000}).body["result"]
    assert page["pageInfo"]["maxKeys"] == 100 and len(page["serviceList"]) == 100
    assert page["pageInfo"]["isTruncated"] is True
    rest = qianfan_console(
        "/v2/service",
        "DescribeServices",
        {"maxKeys": 100, "marker": page["pageInfo"]["nextMarker"]},
    ).body["result"]
    assert len(rest["serviceList"]) == 50 and rest["pageInfo"]["isTruncated"] is False
    ids = [s["serviceId"] for s in page["serviceList"] + rest["serviceList"]]
    assert len(set(ids)) == 150


# ----- state machines ---------------------------------------------------------------------------


def test_scale_deploys_then_serves(baidu: SimControl, qianfan_console: Any) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    qianfan_console(
        "/v2/service",
        "ScaleService",
        {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 3},
    )
    detail = qianfan_console("/v2/service", "DescribeService", {"serviceId": sid}).body["result"]
    assert (detail["runStatus"], detail["resourceConfig"]["replicasCount"]) == ("Deploying", 3)
    again = {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 2}
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", again)) == (
        409,
        "ServiceStatusConflict",
    )
    baidu.advance(20)
    assert (
        qianfan_console("/v2/service", "DescribeService", {"serviceId": sid}).body["result"][
            "runStatus"
        ]
        == "Serving"
    )


def test_scale_beyond_compute_units_fails(baidu: SimControl, qianfan_console: Any) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    body = {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 9}
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", body)) == (
        400,
        "ResourceInsufficient",
    )


def _run_status(qianfan_console: Any, sid: str) -> str:
    detail = qianfan_console("/v2/service", "DescribeService", {"serviceId": sid}).body["result"]
    return str(detail["runStatus"])


def test_deactivate_is_accepted_then_takes_effect(baidu: SimControl, qianfan_console: Any) -> None:
    """ "operation 操作成功,具体状态查询服务状态": the answer only says the operation was
    accepted; the service goes offline afterwards (docs/clouds/baidu-qianfan.md#writing-changes)."""
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    answer = qianfan_console("/v2/service", "DeactivateService", {"serviceId": sid}).body["result"]
    assert answer["operation"] is True
    assert _run_status(qianfan_console, sid) == "Deploying"
    body = {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 2}
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", body)) == (
        409,
        "ServiceStatusConflict",
    )
    baidu.advance(9)
    assert _run_status(qianfan_console, sid) == "Deploying"
    baidu.advance(1)
    assert _run_status(qianfan_console, sid) == "Stopped"
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", body)) == (
        409,
        "ServiceStatusConflict",
    )
    assert len(baidu.writes("DeactivateService")) == 1


def test_deactivating_status_is_a_setting(baidu: SimControl, qianfan_console: Any) -> None:
    """No in-between status is documented; `Serving` until offline is the other reading."""
    baidu.update_settings(baidu_deactivating_status="Serving")
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    qianfan_console("/v2/service", "DeactivateService", {"serviceId": sid})
    assert _run_status(qianfan_console, sid) == "Serving"
    baidu.advance(10)
    assert _run_status(qianfan_console, sid) == "Stopped"


# ----- services on several compute-unit instances ----------------------------------------------

OTHER_UNIT = "cu-test00002"


def test_a_service_seeded_on_two_instances_lists_both(
    baidu: SimControl, qianfan_console: Any
) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1, OTHER_UNIT: 2})
    detail = qianfan_console("/v2/service", "DescribeService", {"serviceId": sid}).body["result"]
    assert detail["computeUnits"] == [
        {"instanceId": BD_UNIT, "deploymentReplicasCount": 1},
        {"instanceId": OTHER_UNIT, "deploymentReplicasCount": 2},
    ]
    assert detail["resourceConfig"]["replicasCount"] == 3
    # The instance the account did not have was bought with the seed.
    assert baidu.accounts()["b1"]["compute_units"][OTHER_UNIT]["total_units"] == 8


def test_scaling_one_instance_leaves_the_other_alone(
    baidu: SimControl, qianfan_console: Any
) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1, OTHER_UNIT: 2})
    body = {"serviceId": sid, "instanceId": OTHER_UNIT, "deploymentReplicasCount": 4}
    qianfan_console("/v2/service", "ScaleService", body)
    baidu.advance(20)
    detail = qianfan_console("/v2/service", "DescribeService", {"serviceId": sid}).body["result"]
    assert detail["computeUnits"] == [
        {"instanceId": BD_UNIT, "deploymentReplicasCount": 1},
        {"instanceId": OTHER_UNIT, "deploymentReplicasCount": 4},
    ]
    assert (detail["runStatus"], detail["resourceConfig"]["replicasCount"]) == ("Serving", 5)
    assert [w["params"] for w in baidu.writes("ScaleService")] == [body]


def test_each_instance_has_its_own_capacity(baidu: SimControl, qianfan_console: Any) -> None:
    """8 units on each instance: 8 replicas fit on one although the other already uses 3."""
    sid = baidu.add_service(account="b1", units={BD_UNIT: 3, OTHER_UNIT: 1})
    fits = {"serviceId": sid, "instanceId": OTHER_UNIT, "deploymentReplicasCount": 8}
    qianfan_console("/v2/service", "ScaleService", fits)
    baidu.advance(20)
    too_many = {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 9}
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", too_many)) == (
        400,
        "ResourceInsufficient",
    )


def test_a_console_edit_can_add_an_instance_that_then_scales(
    baidu: SimControl, qianfan_console: Any
) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    baidu.edit_service(sid, units={BD_UNIT: 1, "cu-added0001": 1})
    body = {"serviceId": sid, "instanceId": "cu-added0001", "deploymentReplicasCount": 2}
    assert qianfan_console("/v2/service", "ScaleService", body).body["result"] is True
    assert baidu.service(sid)["internal"]["units"] == {BD_UNIT: 1, "cu-added0001": 2}


def test_scaling_an_instance_the_account_lacks_is_not_found(
    baidu: SimControl, qianfan_console: Any
) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    body = {"serviceId": sid, "instanceId": "cu-nosuch0001", "deploymentReplicasCount": 2}
    assert _error(lambda: qianfan_console("/v2/service", "ScaleService", body)) == (
        404,
        "ResourceNotFound",
    )
    assert baidu.service(sid)["internal"]["units"] == {BD_UNIT: 1}


def test_throttling_uses_qps_limit_error(baidu: SimControl, baidu_server: RunningSim) -> None:
    baidu.set_rate_limits(DescribeServices=2)
    codes = [_bce_post(baidu_server, "DescribeServices", {}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    baidu.advance(1)
    assert _bce_post(baidu_server, "DescribeServices", {}).status_code == 200
