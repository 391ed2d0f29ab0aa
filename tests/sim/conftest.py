"""Simulators on loopback ports, and each vendor's official SDK pointed at them.

The Huawei and Qianfan SDKs are imported inside fixtures on purpose: huaweicloudsdkcore writes
to ~/.huaweicloud on import (HOME must be patched first) and qianfan installs a sys.meta_path
finder on import, which other suites should not inherit just by being collected with us.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from cloudsim.control import SimControl
from cloudsim.server import RunningSim, serve_in_thread

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")

TC_ID, TC_KEY = "AKIDsimtest000000000000000000000000001", "simtestSecretKey000000000000001"
TC_REGION = "ap-guangzhou"
HW_AK, HW_SK, HW_PROJECT = (
    "HWSIMTESTAK000000001",
    "hwsimtestSK00000000000000000000000000001",
    "proj0123456789",
)
HW_TOKEN = "hw-sim-token-1"
BD_AK, BD_SK = "bdsimtestak00000000000001", "bdsimtestsk0000000000000000000001"
BD_UNIT = "cu-test00001"


@pytest.fixture(scope="session", autouse=True)
def _no_proxy() -> Iterator[None]:
    """All traffic goes to 127.0.0.1; a proxy in the environment would swallow it."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PROXY_VARS:
            mp.delenv(name, raising=False)
        yield


def _serve(cloud: str) -> Iterator[RunningSim]:
    handle = serve_in_thread(cloud, seed=7, speed=0)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def tencent_server() -> Iterator[RunningSim]:
    yield from _serve("tencent")


@pytest.fixture(scope="session")
def huawei_server() -> Iterator[RunningSim]:
    yield from _serve("huawei")


@pytest.fixture(scope="session")
def baidu_server() -> Iterator[RunningSim]:
    yield from _serve("baidu")


def _fresh(handle: RunningSim, account: dict[str, Any]) -> Iterator[SimControl]:
    with handle.control as control:
        control.reset()
        control.set_clock(speed=0)
        control.add_account(**account)
        yield control


@pytest.fixture
def tencent(tencent_server: RunningSim) -> Iterator[SimControl]:
    """A reset TI-ONE simulator with account `t1` (frozen clock)."""
    yield from _fresh(
        tencent_server,
        {"name": "t1", "secret_id": TC_ID, "secret_key": TC_KEY, "regions": [TC_REGION]},
    )


@pytest.fixture
def huawei(huawei_server: RunningSim) -> Iterator[SimControl]:
    """A reset ModelArts simulator with account `h1` (frozen clock)."""
    yield from _fresh(
        huawei_server,
        {"name": "h1", "ak": HW_AK, "sk": HW_SK, "projects": [HW_PROJECT], "token": HW_TOKEN},
    )


@pytest.fixture
def baidu(baidu_server: RunningSim) -> Iterator[SimControl]:
    """A reset Qianfan simulator with account `b1` and compute unit BD_UNIT (frozen clock)."""
    yield from _fresh(
        baidu_server,
        {"name": "b1", "ak": BD_AK, "sk": BD_SK, "compute_units": {BD_UNIT: {"total_units": 8}}},
    )


# ----- official SDK clients -------------------------------------------------------------------


@pytest.fixture
def tione(tencent_server: RunningSim) -> Any:
    """The typed TioneClient (tencentcloud-sdk-python-tione) pointed at the simulator."""
    from tencentcloud.common.credential import Credential
    from tencentcloud.tione.v20211111 import tione_client

    return tione_client.TioneClient(
        Credential(TC_ID, TC_KEY), TC_REGION, tencent_profile(tencent_server)
    )


def tencent_profile(server: RunningSim, timeout: int = 5) -> Any:
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    return ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=server.endpoint, reqTimeout=timeout)
    )


@pytest.fixture
def tione_common(tencent_server: RunningSim) -> Any:
    """CommonClient, for ModifyModelServicePartialConfig (absent from the typed client)."""
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential

    return CommonClient(
        "tione", "2021-11-11", Credential(TC_ID, TC_KEY), TC_REGION, tencent_profile(tencent_server)
    )


@pytest.fixture(scope="session")
def huawei_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """huaweicloudsdkcore writes ~/.huaweicloud/application_id on import: keep it in a tmp HOME."""
    home = tmp_path_factory.mktemp("hwhome")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        import huaweicloudsdkcore.client  # noqa: F401 - import under the patched HOME

        yield


class HuaweiV1:
    """huaweicloudsdkmodelarts' ModelArtsClient.call_api for the v1 paths (no typed methods)."""

    def __init__(
        self,
        server: RunningSim,
        ak: str = HW_AK,
        sk: str = HW_SK,
        project: str = HW_PROJECT,
        **http_config: Any,
    ) -> None:
        """`http_config` sets HttpConfig attributes (signing_algorithm, retry_times, ...)."""
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.http.http_config import HttpConfig
        from huaweicloudsdkcore.sdk_response import SdkResponse
        from huaweicloudsdkmodelarts.v1 import ModelArtsClient

        class Raw(SdkResponse):  # type: ignore[misc]
            openapi_types: ClassVar[dict[str, str]] = {}
            attribute_map: ClassVar[dict[str, str]] = {}

        self._raw = Raw
        config = HttpConfig.get_default_config()
        config.timeout = (5, 5)
        for name, value in http_config.items():
            setattr(config, name, value)
        self.client = (
            ModelArtsClient.new_builder()
            .with_http_config(config)
            .with_credentials(BasicCredentials(ak, sk, project))
            .with_endpoints([server.base_url])
            .build()
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        **path_params: str,
    ) -> tuple[int, Any]:
        import json

        response = self.client.call_api(
            resource_path=path,
            method=method,
            path_params=path_params,
            query_params=query or [],
            header_params={"Content-Type": content_type},
            body=body,
            response_type=self._raw,
        )
        return response.status_code, json.loads(response.raw_content or b"{}")


@pytest.fixture
def modelarts(huawei_home: None, huawei_server: RunningSim) -> HuaweiV1:
    return HuaweiV1(huawei_server)


@pytest.fixture
def qianfan_console(baidu_server: RunningSim) -> Iterator[Any]:
    """qianfan's `call_action`, configured (config object, not kwargs) for the simulator."""
    import qianfan
    from qianfan.resources.console.utils import call_action

    config = qianfan.get_config()
    saved = (config.ACCESS_KEY, config.SECRET_KEY, config.CONSOLE_API_BASE_URL)
    config.ACCESS_KEY, config.SECRET_KEY = BD_AK, BD_SK
    config.CONSOLE_API_BASE_URL = baidu_server.base_url
    try:
        yield call_action
    finally:
        config.ACCESS_KEY, config.SECRET_KEY, config.CONSOLE_API_BASE_URL = saved


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
