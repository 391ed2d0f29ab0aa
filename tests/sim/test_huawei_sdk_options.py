"""The ModelArts simulator under every client option huaweicloudsdkcore documents.

The options come from `huaweicloudsdkcore/http/http_config.py` (signing_algorithm,
ignore_content_type_for_get_request, retry_times, timeout) and from the Content-Type a caller
may set, which decides whether the SDK signs the body. Options that only steer the client
towards the real hosts (region, proxy, SSL) are not exercised; docs/simulators.md says why.
"""

# ruff: noqa: PLC0415 - the Huawei SDK is imported under a patched HOME (see conftest)

from __future__ import annotations

from typing import Any

import pytest

from cloudsim.control import SimControl
from cloudsim.server import RunningSim

from .conftest import HuaweiV1

ONE = "/v1/{project_id}/services/{service_id}"
LIST = "/v1/{project_id}/services"
SIMULATED = ["HMAC_SHA256", "HMAC_SM3"]
NOT_SIMULATED = {"ECDSA_P256_SHA256": "SDK-ECDSA-P256-SHA256", "SM2_SM3": "SDK-SM2-SM3"}


def _algorithm(name: str) -> Any:
    from huaweicloudsdkcore.signer.algorithm import SigningAlgorithm

    return getattr(SigningAlgorithm, name)


def _error(call: Any) -> tuple[int, str, str]:
    from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException

    with pytest.raises(ServiceResponseException) as err:
        call()
    return err.value.status_code, err.value.error_code, err.value.error_msg


@pytest.fixture
def client_for(huawei_home: None, huawei_server: RunningSim) -> Any:
    def build(**http_config: Any) -> HuaweiV1:
        return HuaweiV1(huawei_server, **http_config)

    return build


@pytest.mark.parametrize("ignore_get_content_type", [False, True], ids=["json-get", "bare-get"])
@pytest.mark.parametrize("algorithm", SIMULATED)
def test_every_simulated_algorithm_reads_and_writes(
    huawei: SimControl, client_for: Any, algorithm: str, ignore_get_content_type: bool
) -> None:
    sid = huawei.add_service(account="h1", name="svc", replicas=1)
    client = client_for(
        signing_algorithm=_algorithm(algorithm),
        ignore_content_type_for_get_request=ignore_get_content_type,
    )
    status, listing = client.call("GET", LIST, query=[("service_name", "svc"), ("limit", 10)])
    assert (status, [s["service_id"] for s in listing["services"]]) == (200, [sid])
    status, detail = client.call("GET", ONE, service_id=sid)
    assert status == 200 and detail["status"] == "running"
    body = {
        "changed_property": "instance_count",
        "configs": [{"model_id": detail["config"][0]["model_id"], "changed_value": "2"}],
    }
    assert client.call("PUT", ONE + "/property", body=body, service_id=sid)[0] == 200
    assert huawei.service(sid)["internal"]["replicas"] == 2


@pytest.mark.parametrize("algorithm", SIMULATED)
def test_a_wrong_key_fails_with_every_simulated_algorithm(
    huawei: SimControl, huawei_home: None, huawei_server: RunningSim, algorithm: str
) -> None:
    client = HuaweiV1(huawei_server, sk="wrong", signing_algorithm=_algorithm(algorithm))
    assert _error(lambda: client.call("GET", LIST))[:2] == (401, "APIGW.0301")


@pytest.mark.parametrize("algorithm", sorted(NOT_SIMULATED))
def test_key_pair_algorithms_are_refused_by_name(
    huawei: SimControl, client_for: Any, algorithm: str
) -> None:
    client = client_for(signing_algorithm=_algorithm(algorithm))
    status, code, message = _error(lambda: client.call("GET", LIST))
    assert (status, code) == (401, "APIGW.0301")
    assert NOT_SIMULATED[algorithm] in message


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("algorithm", SIMULATED)
def test_an_empty_body_is_hashed_whatever_the_content_type(
    huawei: SimControl, client_for: Any, content_type: str, algorithm: str
) -> None:
    """A non-JSON Content-Type makes the SDK send `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`,
    but for an empty body it signs the empty body's hash (Signer._process_hash_payload)."""
    sid = huawei.add_service(account="h1")
    client = client_for(signing_algorithm=_algorithm(algorithm))
    status, detail = client.call("GET", ONE, content_type=content_type, service_id=sid)
    assert (status, detail["service_id"]) == (200, sid)


@pytest.mark.parametrize(
    ("retry_times", "fault", "answered"),
    [
        (0, {"kind": "error", "code": "APIGW.0308", "http_status": 429}, False),
        (2, {"kind": "error", "code": "APIGW.0308", "http_status": 429}, True),
        (0, {"kind": "reset"}, False),
        (2, {"kind": "reset"}, True),
        (2, {"kind": "error", "code": "ModelArts.3501", "http_status": 500}, False),
    ],
    ids=["429-no-retry", "429-retried", "reset-no-retry", "reset-retried", "500-not-retried"],
)
def test_retry_times_resends_throttling_and_broken_connections(
    huawei: SimControl,
    client_for: Any,
    retry_times: int,
    fault: dict[str, Any],
    answered: bool,
) -> None:
    """HttpConfig.retry_times is urllib3's Retry(total=N, status_forcelist=[429])."""
    from huaweicloudsdkcore.exceptions.exceptions import SdkException

    huawei.inject("ListServices", count=1, **fault)
    client = client_for(retry_times=retry_times)
    if answered:
        assert client.call("GET", LIST)[0] == 200
    else:
        with pytest.raises(SdkException):
            client.call("GET", LIST)
    calls = huawei.journal("ListServices")["ListServices"]["calls"]
    assert calls == (2 if answered else 1)


def test_a_stop_while_deploying_is_accepted(huawei: SimControl, client_for: Any) -> None:
    """Only a start or a config change is refused while deploying
    (docs/clouds/huawei-modelarts.md#writing-changes)."""
    sid = huawei.add_service(account="h1", replicas=1, status="stopped")
    client = client_for()
    assert client.call("PUT", ONE, body={"status": "running"}, service_id=sid) == (200, {})
    assert huawei.service(sid)["internal"]["status"] == "deploying"
    assert client.call("PUT", ONE, body={"status": "stopped"}, service_id=sid) == (200, {})
    assert huawei.service(sid)["internal"]["status"] == "stopping"
    huawei.advance(60)  # the cancelled deployment never comes back
    assert huawei.service(sid)["internal"]["status"] == "stopped"
    refused = _error(lambda: client.call("PUT", ONE, body={"status": "stopped"}, service_id=sid))
    assert refused[:2] == (400, "ModelArts.3519")


def test_a_start_while_deploying_is_still_refused(huawei: SimControl, client_for: Any) -> None:
    sid = huawei.add_service(account="h1", replicas=1, status="stopped")
    client = client_for()
    client.call("PUT", ONE, body={"status": "running"}, service_id=sid)
    huawei.edit_service(sid, status="deploying")
    refused = _error(lambda: client.call("PUT", ONE, body={"status": "running"}, service_id=sid))
    assert refused[:2] == (400, "ModelArts.3519")


def test_a_jump_past_the_schedule_stops_at_the_due_time(
    huawei: SimControl, client_for: Any
) -> None:
    sid = huawei.add_service(account="h1")
    client = client_for()
    schedule = [{"type": "stop", "time_unit": "HOURS", "duration": 1}]
    client.call("PUT", ONE, body={"schedule": schedule}, service_id=sid)
    due_ms = client.call("GET", ONE, service_id=sid)[1]["due_time"]
    huawei.advance(7200)  # one jump, an hour past the due time
    detail = client.call("GET", ONE, service_id=sid)[1]
    # Stopping began at the due time and took stop_seconds (10 s), an hour ago.
    assert detail["status"] == "stopped"
    assert abs(detail["transition_at"] - (due_ms + 10_000)) <= 1


def test_a_console_scale_moves_update_time_and_the_instance_count(
    huawei: SimControl, client_for: Any
) -> None:
    """A console scale is a config change, so the list's `update_time` moves: the operator
    reads details only for services whose `update_time` moved (docs/clouds/huawei-modelarts.md)."""
    sid = huawei.add_service(account="h1", replicas=2)
    client = client_for()
    before = client.call("GET", ONE, service_id=sid)[1]
    huawei.advance(5)
    huawei.edit_service(sid, replicas=5, ready=5)
    after = client.call("GET", ONE, service_id=sid)[1]
    assert [c["instance_count"] for c in after["config"]] == [5]
    assert int(after["update_time"]) > int(before["update_time"])
