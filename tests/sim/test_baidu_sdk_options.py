"""The Qianfan simulator under every client option qianfan and bce-python-sdk document.

qianfan: `IAM_SIGN_EXPIRATION_SEC` (the signature's window) and the console retry settings
(`CONSOLE_API_RETRY_COUNT`, `_BACKOFF_FACTOR`, `_JITTER`) in `qianfan/config.py`.
bce-python-sdk: its own HTTP client with `BceClientConfiguration(retry_policy=...)` and the
signer's default header set and 1800 s window (`bce_v1_signer.sign` without arguments).
"""

# ruff: noqa: PLC0415 - qianfan is imported lazily (see conftest)

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from baidubce import protocol
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError
from baidubce.http import bce_http_client, handler
from baidubce.retry.retry_policy import BackOffRetryPolicy, NoRetryPolicy

from cloudsim.control import SimControl
from cloudsim.server import RunningSim

from .conftest import BD_AK, BD_SK, BD_UNIT

UNKNOWN_AK = "unknownak00000000000000000"


@pytest.fixture
def qianfan_config(qianfan_console: Any) -> Iterator[Any]:
    """qianfan's config object; every option changed in a test is put back afterwards."""
    import qianfan

    config = qianfan.get_config()
    names = (
        "ACCESS_KEY",
        "IAM_SIGN_EXPIRATION_SEC",
        "CONSOLE_API_RETRY_COUNT",
        "CONSOLE_API_RETRY_BACKOFF_FACTOR",
        "CONSOLE_API_RETRY_JITTER",
    )
    saved = {name: getattr(config, name) for name in names}
    try:
        yield config
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


def _qianfan_error(call: Any) -> tuple[int, str]:
    from qianfan.errors import RequestError

    with pytest.raises(RequestError) as err:
        call()
    match = re.search(r"response body: '(\{.*?\})'", str(err.value))
    assert match is not None
    return err.value.status_code, json.loads(match[1])["code"]


@pytest.mark.parametrize(
    ("expiration", "age", "accepted"),
    [(60, 50, True), (60, 70, False), (300, 290, True), (300, 310, False), (1800, 1790, True)],
    ids=["60s-window-50s-old", "60s-window-70s-old", "300s-50", "300s-310s-old", "1800s-1790s"],
)
def test_the_signature_window_is_the_one_the_client_chose(
    *,
    baidu: SimControl,
    qianfan_console: Any,
    qianfan_config: Any,
    expiration: int,
    age: int,
    accepted: bool,
) -> None:
    qianfan_config.IAM_SIGN_EXPIRATION_SEC = expiration
    baidu.set_clock(auth_skew=age)  # the server's clock is `age` seconds past the signature
    if accepted:
        assert qianfan_console("/v2/service", "DescribeServices", {}).body["result"] is not None
    else:
        assert _qianfan_error(lambda: qianfan_console("/v2/service", "DescribeServices", {})) == (
            400,
            "RequestExpired",
        )


def test_an_unknown_key_wins_over_an_expired_signature(
    baidu: SimControl, qianfan_console: Any, qianfan_config: Any
) -> None:
    qianfan_config.ACCESS_KEY = UNKNOWN_AK
    baidu.set_clock(auth_skew=600)
    assert _qianfan_error(lambda: qianfan_console("/v2/service", "DescribeServices", {})) == (
        403,
        "InvalidAccessKeyId",
    )


@pytest.mark.parametrize(
    ("retry_count", "answered"), [(1, False), (2, True)], ids=["no-retry", "one-retry"]
)
def test_console_retry_count_resends_a_broken_connection(
    baidu: SimControl,
    qianfan_console: Any,
    qianfan_config: Any,
    retry_count: int,
    answered: bool,
) -> None:
    qianfan_config.CONSOLE_API_RETRY_COUNT = retry_count
    qianfan_config.CONSOLE_API_RETRY_BACKOFF_FACTOR = 0
    qianfan_config.CONSOLE_API_RETRY_JITTER = 0
    baidu.inject("DescribeServices", "reset", count=1)
    if answered:
        assert qianfan_console("/v2/service", "DescribeServices", {}).body["requestId"]
    else:
        with pytest.raises(Exception, match="Connection"):
            qianfan_console("/v2/service", "DescribeServices", {})
    assert baidu.journal("DescribeServices")["DescribeServices"]["calls"] == retry_count


def test_console_retries_do_not_cover_a_throttled_answer(
    baidu: SimControl, qianfan_console: Any, qianfan_config: Any
) -> None:
    """qianfan retries request exceptions and `error_code` bodies, not an HTTP 429."""
    qianfan_config.CONSOLE_API_RETRY_COUNT = 3
    qianfan_config.CONSOLE_API_RETRY_BACKOFF_FACTOR = 0
    baidu.set_rate_limits(DescribeServices=1)
    qianfan_console("/v2/service", "DescribeServices", {})
    assert _qianfan_error(lambda: qianfan_console("/v2/service", "DescribeServices", {})) == (
        429,
        "QPSLimitReached",
    )
    assert baidu.journal("DescribeServices")["DescribeServices"]["calls"] == 2


def _bce_send(server: RunningSim, action: str, body: dict[str, Any], retry_policy: Any) -> Any:
    config = BceClientConfiguration(
        credentials=BceCredentials(BD_AK, BD_SK),
        endpoint=server.base_url,
        protocol=protocol.HTTP,
        connection_timeout_in_mills=5000,
        retry_policy=retry_policy,
    )
    return bce_http_client.send_request(
        config,
        bce_v1_signer.sign,  # defaults: host, content-md5/-length/-type and x-bce-*; 1800 s
        [handler.parse_error, handler.parse_json],
        b"POST",
        b"/v2/service",
        json.dumps(body),
        {b"Content-Type": b"application/json"},
        {b"Action": action.encode()},
    )


def test_the_bce_client_with_its_default_signing_reads_and_writes(
    baidu: SimControl, baidu_server: RunningSim
) -> None:
    sid = baidu.add_service(account="b1", units={BD_UNIT: 1})
    listed = _bce_send(baidu_server, "DescribeServices", {}, NoRetryPolicy())
    assert [s.service_id for s in listed.result.service_list] == [sid]
    body = {"serviceId": sid, "instanceId": BD_UNIT, "deploymentReplicasCount": 2}
    assert _bce_send(baidu_server, "ScaleService", body, NoRetryPolicy()).result is True
    assert baidu.service(sid)["internal"]["units"] == {BD_UNIT: 2}


@pytest.mark.parametrize(
    ("policy", "calls"),
    [(NoRetryPolicy(), 1), (BackOffRetryPolicy(base_interval_in_millis=1), 2)],
    ids=["no-retry", "back-off"],
)
def test_the_bce_retry_policy_resends_a_server_error(
    baidu: SimControl, baidu_server: RunningSim, policy: Any, calls: int
) -> None:
    baidu.inject("DescribeServices", code="InternalError", http_status=500, count=1)
    if calls == 1:
        with pytest.raises(BceHttpClientError) as err:
            _bce_send(baidu_server, "DescribeServices", {}, policy)
        assert err.value.last_error.code == "InternalError"
    else:
        assert _bce_send(baidu_server, "DescribeServices", {}, policy).result is not None
    assert baidu.journal("DescribeServices")["DescribeServices"]["calls"] == calls


def test_a_bce_signature_past_its_1800_s_window_is_expired(
    baidu: SimControl, baidu_server: RunningSim
) -> None:
    baidu.set_clock(auth_skew=1801)
    with pytest.raises(BceHttpClientError) as err:
        _bce_send(baidu_server, "DescribeServices", {}, NoRetryPolicy())
    assert err.value.last_error.code == "RequestExpired"
