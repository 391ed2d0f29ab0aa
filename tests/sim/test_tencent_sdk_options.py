"""The TI-ONE simulator under every client option tencentcloud-sdk-python documents.

The options come from `tencentcloud/common/profile/client_profile.py` (signMethod, language,
retryer, request_client, unsignedPayload) and `http_profile.py` (reqMethod, keepAlive,
reqTimeout), and from `Credential(secret_id, secret_key, token)`. Options that only steer the
client towards the real hosts (rootDomain, proxy, certification, the region breaker) are not
exercised; docs/simulators.md says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.retry import StandardRetryer
from tencentcloud.tione.v20211111 import models, tione_client

from cloudsim.control import SimControl
from cloudsim.server import RunningSim
from cloudsim.tencent import REGIONS
from cloudsim.timefmt import iso_z

from .conftest import TC_ID, TC_KEY, TC_REGION

pytestmark = pytest.mark.filterwarnings("ignore:.*fileds are useless:UserWarning")

UNKNOWN_ID = "AKIDunknown000000000000000000000000000"


@dataclass(frozen=True)
class Style:
    """One way the SDK builds a request: signature, HTTP method, unsigned payload."""

    sign: str
    method: str
    unsigned: bool = False

    @property
    def id(self) -> str:
        return f"{self.sign}-{self.method}" + ("-unsigned-payload" if self.unsigned else "")


STYLES = [
    Style("TC3-HMAC-SHA256", "POST"),
    Style("TC3-HMAC-SHA256", "POST", unsigned=True),
    Style("TC3-HMAC-SHA256", "GET"),
    Style("TC3-HMAC-SHA256", "GET", unsigned=True),
    Style("HmacSHA256", "POST"),
    Style("HmacSHA256", "GET"),
    Style("HmacSHA1", "POST"),
    Style("HmacSHA1", "GET"),
]


def profile(
    server: RunningSim,
    style: Style = STYLES[0],
    *,
    language: str = "zh-CN",
    retryer: Any = None,
    keep_alive: bool = False,
    timeout: int = 5,
) -> ClientProfile:
    http = HttpProfile(
        protocol="http",
        endpoint=server.endpoint,
        reqMethod=style.method,
        reqTimeout=timeout,
        keepAlive=keep_alive,
    )
    client_profile = ClientProfile(
        signMethod=style.sign,
        httpProfile=http,
        language=language,
        retryer=retryer,
        request_client="cloudinfer-sim-tests",  # also a signed v1 parameter
    )
    client_profile.unsignedPayload = style.unsigned
    return client_profile


def clients(
    server: RunningSim,
    style: Style = STYLES[0],
    credential: Credential | None = None,
    region: str = TC_REGION,
    **options: Any,
) -> tuple[Any, CommonClient]:
    credential = credential or Credential(TC_ID, TC_KEY)
    prof = profile(server, style, **options)
    return (
        tione_client.TioneClient(credential, region, prof),
        CommonClient("tione", "2021-11-11", credential, region, prof),
    )


def _code(call: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as err:
        call()
    return str(err.value.code)


def _req(cls: type, **fields: Any) -> Any:
    request = cls()
    request._deserialize(fields)
    return request


def _list(client: Any, **fields: Any) -> Any:
    return client.DescribeModelServiceGroups(
        _req(models.DescribeModelServiceGroupsRequest, **fields)
    )


# ----- the request-style matrix ----------------------------------------------------------------


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connection", "keep-alive"])
@pytest.mark.parametrize("style", STYLES, ids=[s.id for s in STYLES])
def test_every_request_style_reads_and_writes(
    tencent: SimControl, tencent_server: RunningSim, style: Style, keep_alive: bool
) -> None:
    """GET carries the parameters flattened in the query (`Filters.0.Values.0=...`), v1 carries
    the common ones as parameters too, an unsigned payload leaves the body out of TC3."""
    sid = tencent.add_service(account="t1", name="alpha-chat", replicas=1)
    tencent.add_service(account="t1", name="beta-embed", replicas=1)
    tione, common = clients(tencent_server, style, keep_alive=keep_alive)
    fuzzy = [{"Name": "ServiceGroupName", "Values": ["chat", "nothing"], "Fuzzy": True}]
    page = _list(tione, Filters=fuzzy, Limit=10, Order="ASC")
    assert (page.TotalCount, [g.ServiceGroupName for g in page.ServiceGroups]) == (
        1,
        ["alpha-chat"],
    )
    negative = [{"Name": "ServiceGroupName", "Values": ["alpha-chat"], "Negative": True}]
    assert [g.ServiceGroupName for g in _list(tione, Filters=negative).ServiceGroups] == [
        "beta-embed"
    ]
    described = tione.DescribeModelService(
        _req(models.DescribeModelServiceRequest, ServiceId=sid)
    ).Service
    assert described.ServiceId == sid
    scaled = tione.ModifyModelService(
        _req(models.ModifyModelServiceRequest, ServiceId=sid, ServiceAction="SCALE", Replicas=3)
    ).Service
    assert (scaled.Status, scaled.ServiceInfo.Replicas) == ("Pending", 3)
    limit = {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 7}
    answer = common.call_json(
        "ModifyModelServicePartialConfig", {"ServiceId": sid, "ServiceLimit": limit}
    )
    assert answer["Response"]["Service"]["ServiceInfo"]["ServiceLimit"] == limit
    # Form values arrive as strings; the journal shows the typed request the action ran.
    assert [w["params"] for w in tencent.writes("ModifyModelService")] == [
        {"ServiceId": sid, "ServiceAction": "SCALE", "Replicas": 3}
    ]
    assert [w["params"] for w in tencent.writes("ModifyModelServicePartialConfig")] == [
        {"ServiceId": sid, "ServiceLimit": limit}
    ]


@pytest.mark.parametrize(
    ("secret_id", "secret_key", "age", "code"),
    [
        (TC_ID, "wrong-key", 0, "AuthFailure.SignatureFailure"),
        (UNKNOWN_ID, TC_KEY, 0, "AuthFailure.SecretIdNotFound"),
        (TC_ID, TC_KEY, 600, "AuthFailure.SignatureExpire"),
        # The unknown key wins over the time window.
        (UNKNOWN_ID, TC_KEY, 600, "AuthFailure.SecretIdNotFound"),
    ],
    ids=["wrong-key", "unknown-id", "ten-minutes-old", "unknown-id-and-ten-minutes-old"],
)
@pytest.mark.parametrize("style", STYLES, ids=[s.id for s in STYLES])
def test_every_request_style_gets_the_documented_auth_errors(
    *,
    tencent: SimControl,
    tencent_server: RunningSim,
    style: Style,
    secret_id: str,
    secret_key: str,
    age: int,
    code: str,
) -> None:
    tione, _ = clients(tencent_server, style, Credential(secret_id, secret_key))
    with mock.patch(
        "tencentcloud.common.abstract_client.time.time", return_value=time.time() - age
    ):
        assert _code(lambda: _list(tione)) == code
    assert tencent.journal()["DescribeModelServiceGroups"]["errors"] == 1


def test_an_unknown_signature_method_never_leaves_the_sdk(
    tencent: SimControl, tencent_server: RunningSim
) -> None:
    tione, _ = clients(tencent_server, Style("HmacMD5", "POST"))
    assert _code(lambda: _list(tione)) == "ClientError"
    assert tencent.journal() == {}


# ----- temporary credentials (X-TC-Token, or the v1 Token parameter) -------------------------

TOKEN_STYLES = [STYLES[0], STYLES[2], STYLES[4], STYLES[5]]


@pytest.mark.parametrize("style", TOKEN_STYLES, ids=[s.id for s in TOKEN_STYLES])
def test_temporary_credentials_work_with_their_token(
    tencent: SimControl, tencent_server: RunningSim, style: Style
) -> None:
    tencent.add_service(account="t1", name="mine")
    temporary = tencent.temporary_credentials("t1", ttl=600)
    credential = Credential(temporary["secret_id"], temporary["secret_key"], temporary["token"])
    tione, _ = clients(tencent_server, style, credential)
    assert [g.ServiceGroupName for g in _list(tione).ServiceGroups] == ["mine"]


@pytest.mark.parametrize(
    "case",
    ["no-token", "other-token", "token-with-permanent-key", "expired"],
)
@pytest.mark.parametrize("style", TOKEN_STYLES, ids=[s.id for s in TOKEN_STYLES])
def test_a_token_is_checked(
    tencent: SimControl, tencent_server: RunningSim, style: Style, case: str
) -> None:
    temporary = tencent.temporary_credentials("t1", ttl=60)
    credential = {
        "no-token": Credential(temporary["secret_id"], temporary["secret_key"]),
        "other-token": Credential(temporary["secret_id"], temporary["secret_key"], "forged"),
        "token-with-permanent-key": Credential(TC_ID, TC_KEY, temporary["token"]),
        "expired": Credential(temporary["secret_id"], temporary["secret_key"], temporary["token"]),
    }[case]
    if case == "expired":
        tencent.set_clock(auth_skew=61)  # the server's clock is past the expiry
    tione, _ = clients(tencent_server, style, credential)
    assert _code(lambda: _list(tione)) == "AuthFailure.TokenFailure"


# ----- language, region, retries -------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-CN", "en-US"])
@pytest.mark.parametrize("style", [STYLES[0], STYLES[4]], ids=[STYLES[0].id, STYLES[4].id])
def test_both_languages_work_and_keep_the_codes(
    tencent: SimControl, tencent_server: RunningSim, language: str, style: Style
) -> None:
    sid = tencent.add_service(account="t1")
    tione, _ = clients(tencent_server, style, language=language)
    assert _list(tione).TotalCount == 1
    describe = models.DescribeModelServiceRequest
    assert tione.DescribeModelService(_req(describe, ServiceId=sid)).Service.ServiceId == sid
    assert (
        _code(lambda: tione.DescribeModelService(_req(describe, ServiceId="ms-none-1")))
        == "ResourceNotFound"
    )


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_each_documented_region_is_its_own_scope(
    tencent: SimControl, tencent_server: RunningSim, region: str
) -> None:
    tencent.add_service(account="t1", name="here", region=region)
    here, _ = clients(tencent_server, region=region)
    assert [g.ServiceGroupName for g in _list(here).ServiceGroups] == ["here"]
    elsewhere = "ap-tokyo" if region != "ap-tokyo" else "ap-seoul"
    there, _ = clients(tencent_server, region=elsewhere)
    assert _list(there).TotalCount == 0


@pytest.mark.parametrize(
    ("region", "code"),
    [("ap-nowhere", "UnsupportedRegion"), ("", "MissingParameter")],
    ids=["unknown-region", "no-region"],
)
@pytest.mark.parametrize("style", [STYLES[0], STYLES[5]], ids=[STYLES[0].id, STYLES[5].id])
def test_a_bad_region_is_refused(
    tencent: SimControl, tencent_server: RunningSim, style: Style, region: str, code: str
) -> None:
    tione, _ = clients(tencent_server, style, region=region)
    assert _code(lambda: _list(tione)) == code


def _no_wait(attempt: int) -> float:
    return 0


@pytest.mark.parametrize(
    ("fault", "code", "retried"),
    [
        ({"kind": "reset"}, "ClientNetworkError", True),
        ({"kind": "html"}, "ServerNetworkError", True),
        ({"kind": "error", "code": "RequestLimitExceeded"}, "RequestLimitExceeded", True),
        ({"kind": "error", "code": "InternalError"}, "InternalError", False),
    ],
    ids=["connection-reset", "html-502", "throttled", "internal-error-not-retried"],
)
def test_standard_retryer_resends_what_it_documents(
    tencent: SimControl,
    tencent_server: RunningSim,
    fault: dict[str, Any],
    code: str,
    retried: bool,
) -> None:
    """StandardRetryer resends network errors and RequestLimitExceeded, nothing else. In SDK
    3.1.195 it never forgets the first error, so after one failure it makes every attempt and
    raises that error although the simulator answered the retries
    (docs/clouds/tencent-tione.md#errors)."""
    tencent.inject("DescribeModelServiceGroups", count=1, **fault)
    retryer = StandardRetryer(max_attempts=3, backoff_fn=_no_wait)
    tione, _ = clients(tencent_server, retryer=retryer, timeout=2)
    assert _code(lambda: _list(tione)) == code
    entries = tencent.journal("DescribeModelServiceGroups")["DescribeModelServiceGroups"]["entries"]
    first = fault.get("code", f"fault:{fault['kind']}")
    assert [e["error_code"] for e in entries] == ([first, None, None] if retried else [first])


def test_standard_retryer_resends_real_throttling(
    tencent: SimControl, tencent_server: RunningSim
) -> None:
    tencent.set_rate_limits(DescribeModelServiceGroups=1)
    retryer = StandardRetryer(max_attempts=3, backoff_fn=_no_wait)
    tione, _ = clients(tencent_server, retryer=retryer)
    assert _list(tione).TotalCount == 0
    assert _code(lambda: _list(tione)) == "RequestLimitExceeded"
    summary = tencent.journal("DescribeModelServiceGroups")["DescribeModelServiceGroups"]
    assert (summary["calls"], summary["throttled"]) == (4, 3)  # frozen clock: no refill


def test_without_a_retryer_one_failure_reaches_the_caller(
    tencent: SimControl, tencent_server: RunningSim
) -> None:
    tencent.inject("DescribeModelServiceGroups", "reset", count=1)
    tione, _ = clients(tencent_server)
    assert _code(lambda: _list(tione)) == "ClientNetworkError"
    assert _list(tione).TotalCount == 0


# ----- a clock jump past a scheduled stop ------------------------------------------------------


def test_a_jump_past_the_scheduled_stop_stops_at_the_due_time(
    tencent: SimControl, tencent_server: RunningSim
) -> None:
    sid = tencent.add_service(account="t1", replicas=1)
    due = tencent.clock()["now"] + 3600
    _, common = clients(tencent_server)
    schedule = {"ScheduleStop": True, "ScheduleStopTime": iso_z(due)}
    common.call_json(
        "ModifyModelServicePartialConfig", {"ServiceId": sid, "ScheduledAction": schedule}
    )
    tencent.advance(7200)  # one jump, an hour past the due time
    service = common.call_json("DescribeModelService", {"ServiceId": sid})["Response"]["Service"]
    # Stopping began at the due time and took stop_seconds (10 s), an hour ago.
    assert (service["Status"], service["UpdateTime"]) == ("Stopped", iso_z(due + 10))
    assert service["ServiceInfo"]["Replicas"] == 0
