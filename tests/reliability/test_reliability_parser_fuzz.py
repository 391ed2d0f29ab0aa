"""Hypothesis-generated cloud replies through each provider's whole read path (envelope,
pagination, parse): every reply yields valid observations or a classified `CloudError`, never
another exception, and never an unbounded series of calls.

The seeds are real replies recorded from the simulators; Hypothesis mutates them (a field
replaced by junk of any type, a key dropped, the body truncated, the status changed) or sends
arbitrary bytes.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from soak import hypothesis_settings

from cloudinfer.cloud.backoff import Backoff
from cloudinfer.cloud.baidu.errors import BAIDU_ERRORS
from cloudinfer.cloud.baidu.provider import BaiduProvider
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    CloudError,
    ConflictError,
    ErrorTable,
    InvalidRequestError,
    MalformedResponseError,
    NoAnswerError,
    NotFoundError,
    QuotaError,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
    class_for_status,
    lookup,
)
from cloudinfer.cloud.huawei.errors import HUAWEI_ERRORS
from cloudinfer.cloud.huawei.provider import HuaweiProvider
from cloudinfer.cloud.model import Cloud, ObservedService, Scale
from cloudinfer.cloud.provider import Account
from cloudinfer.cloud.retry import RetryPolicy
from cloudinfer.cloud.tencent.errors import TENCENT_ERRORS
from cloudinfer.cloud.tencent.provider import TencentProvider
from cloudsim.server import make_sim

MAX_CALLS = 60
"""A list of a few services takes a call or two; more than this is runaway pagination."""
PROJECT = "0123456789abcdef0123456789abcdef"


class VirtualClock:
    """Budgets and backoff on virtual time: nothing here really sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class RunawayError(Exception):
    pass


@dataclass
class Case:
    cloud: Cloud
    make: Callable[..., Any]
    account: Account
    sim_account: dict[str, Any]
    service: dict[str, Any]


CASES = {
    "tencent": Case(
        Cloud.TENCENT, TencentProvider,
        Account("fuzz", Cloud.TENCENT, "ap-guangzhou", TencentCredentials("AKIDfuzz", Secret("s"))),
        {"name": "fuzz", "secret_id": "AKIDfuzz", "secret_key": "s", "regions": ["ap-guangzhou"]},
        {"account": "fuzz", "replicas": 2, "rps_enabled": True, "rps_limit": 5},
    ),
    "huawei": Case(
        Cloud.HUAWEI, HuaweiProvider,
        Account("fuzz", Cloud.HUAWEI, "cn-north-4",
                HuaweiCredentials("HWfuzz", Secret("s"), PROJECT)),
        {"name": "fuzz", "ak": "HWfuzz", "sk": "s", "projects": [PROJECT]},
        {"account": "fuzz", "project_id": PROJECT, "replicas": 2},
    ),
    "baidu": Case(
        Cloud.BAIDU, BaiduProvider,
        Account("fuzz", Cloud.BAIDU, "bj", BaiduCredentials("akfuzz", Secret("s"))),
        {"name": "fuzz", "ak": "akfuzz", "sk": "s", "regions": ["bj"],
         "compute_units": {"cu-1": {"type": "GPU-I-2", "total_units": 64}}},
        {"account": "fuzz", "units": {"cu-1": 2}},
    ),
}  # fmt: skip


def _provider(case: Case, transport: httpx.AsyncBaseTransport) -> Any:
    clock = VirtualClock()
    client = httpx.AsyncClient(transport=transport, base_url="http://cloud.invalid")
    rng = random.Random(0)  # noqa: S311 - backoff jitter, not a secret
    retry = RetryPolicy(max_attempts=2, backoff=Backoff(base=0.01, rng=rng))
    return client, case.make(client, clock=clock, retry=retry)


@dataclass(frozen=True)
class Recorded:
    status: int
    headers: dict[str, str]
    body: bytes


def _record(provider_name: str) -> list[Recorded]:
    """Real replies of one list round and one scale, from an in-process simulator."""
    case = CASES[provider_name]
    sim = make_sim(provider_name, seed=3, speed=0)
    recorded: list[Recorded] = []
    asgi = httpx.ASGITransport(app=sim.asgi())

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await asgi.handle_async_request(request)
            body = await response.aread()
            keep = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            recorded.append(Recorded(response.status_code, keep, body))
            return httpx.Response(response.status_code, headers=keep, content=body)

    async def run() -> None:
        control = httpx.AsyncClient(transport=asgi, base_url="http://cloud.invalid/_sim")
        await control.post("/accounts", json=case.sim_account)
        ids = [(await control.post("/services", json=case.service)).json()["id"] for _ in range(2)]
        client, provider = _provider(case, Recording())
        observed = await provider.list_services(case.account)
        await provider.apply(
            case.account, Scale(service_id=ids[0], replicas=3), observed=observed[0]
        )
        await client.aclose()
        await control.aclose()

    asyncio.run(run())
    return recorded


RECORDED = {name: _record(name) for name in CASES}

CLASSIFIED: frozenset[type[CloudError]] = frozenset(
    {
        ThrottledError,
        TransientError,
        MalformedResponseError,
        NoAnswerError,
        ConflictError,
        BusyError,
        NotFoundError,
        InvalidRequestError,
        AuthError,
        ClockSkewError,
        QuotaError,
        UnsupportedActionError,
    }
)
"""The classes the reconciler acts on. Compared by exact type: a new or wrong subclass fails."""
ERROR_TABLES: dict[Cloud, ErrorTable] = {
    Cloud.TENCENT: TENCENT_ERRORS,
    Cloud.HUAWEI: HUAWEI_ERRORS,
    Cloud.BAIDU: BAIDU_ERRORS,
}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value))
    return set()


def _field_pattern(replies: list[Recorded]) -> re.Pattern[str]:
    keys = {key for reply in replies for key in _keys(json.loads(reply.body))}
    alternatives = "|".join(re.escape(key) for key in sorted(keys, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b")


REPLY_FIELDS = {name: _field_pattern(replies) for name, replies in RECORDED.items()}
"""The field names of each cloud's real replies: a parse error must name the one it refused."""


def _assert_classified(err: CloudError, case: Case, provider_name: str) -> None:
    """The error is one the reconciler knows how to handle, and it says what went wrong."""
    kind = type(err)
    if kind is CloudError:
        # The deliberate "unclassified" bucket: only for a code no table knows, or a status
        # with no meaning of its own (1xx, 3xx).
        table = ERROR_TABLES[case.cloud]
        if err.code is not None:
            assert lookup(table, err.code) is None, f"known code {err.code} left unclassified"
        else:
            assert err.http_status is not None, repr(err)
            assert class_for_status(err.http_status) is CloudError, repr(err)
    else:
        assert kind in CLASSIFIED, f"{kind.__name__} is not a classified error: {err!r}"
    assert err.cloud == case.cloud.value, repr(err)
    assert err.action, f"the error names no action: {err!r}"
    assert str(err).startswith(f"{err.cloud} {err.action}: "), str(err)
    assert err.message.strip(), f"empty message: {err!r}"
    # Specific: the cloud's code, the HTTP status, or the reply field it could not read.
    assert (
        err.code or err.http_status is not None or REPLY_FIELDS[provider_name].search(err.message)
    ), f"the message names nothing specific: {err!r}"


junk = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(max_size=12),
        st.floats(allow_nan=False),
        st.sampled_from(["", "Normal", "running", "Serving", "2030-01-01T00:00:00Z"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any, drop: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if drop and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(copy[head], rest, new, drop)
        return copy
    copy_list = list(value)
    copy_list[head] = _replace(copy_list[head], rest, new, drop)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn, provider_name: str) -> Recorded:
    seed = draw(st.sampled_from(RECORDED[provider_name]))
    kind = draw(st.sampled_from(["field", "field", "field", "drop", "truncate", "bytes", "status"]))
    if kind == "bytes":
        return Recorded(seed.status, seed.headers, draw(st.binary(max_size=200)))
    if kind == "truncate":
        cut = draw(st.integers(0, max(0, len(seed.body) - 1)))
        return Recorded(seed.status, seed.headers, seed.body[:cut])
    if kind == "status":
        status = draw(
            st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503])
        )
        return Recorded(status, seed.headers, seed.body)
    document = json.loads(seed.body)
    path = draw(st.sampled_from(_paths(document)))
    new = draw(junk)
    changed = _replace(document, path, new, drop=kind == "drop" and bool(path))
    return Recorded(seed.status, seed.headers, json.dumps(changed).encode())


def _check(provider_name: str, reply: Recorded) -> None:
    case = CASES[provider_name]
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > MAX_CALLS:
            raise RunawayError(f"{calls} calls for one list round")
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    async def run() -> None:
        client, provider = _provider(case, httpx.MockTransport(handler))
        try:
            try:
                observed = await provider.list_services(case.account)
            except CloudError as err:
                _assert_classified(err, case, provider_name)
                return
            assert all(isinstance(o, ObservedService) for o in observed)
            for service in observed[:1]:
                try:
                    await provider.apply(
                        case.account, Scale(service_id=service.service_id, replicas=3),
                        observed=service,
                    )  # fmt: skip
                except CloudError as err:
                    _assert_classified(err, case, provider_name)
        finally:
            await client.aclose()

    asyncio.run(run())


EXAMPLES = 150
"""Replies per cloud in `make test`."""
SOAK_EXAMPLES = 10_000
"""Replies per cloud in `make test-soak`."""


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param(EXAMPLES, id="150"),
        pytest.param(SOAK_EXAMPLES, marks=pytest.mark.soak, id="soak-10000"),
    ],
)
@pytest.mark.parametrize("provider_name", sorted(CASES))
def test_every_reply_is_an_observation_or_a_classified_error(
    provider_name: str, examples: int
) -> None:
    assert len(RECORDED[provider_name]) >= 2
    fuzz_settings = hypothesis_settings(
        examples, soak=examples != EXAMPLES, suppress=[HealthCheck.too_slow]
    )

    @fuzz_settings
    @given(mutated(provider_name))
    def fuzz(reply: Recorded) -> None:
        _check(provider_name, reply)

    fuzz()


def _list_reply(provider_name: str, change: Callable[[dict[str, Any]], None]) -> Recorded:
    seed = RECORDED[provider_name][0]
    document = json.loads(seed.body)
    change(document)
    return Recorded(seed.status, seed.headers, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("provider_name", "change"),
    [
        pytest.param(
            "tencent", lambda d: d["Response"].update(TotalCount=10**9), id="tencent-TotalCount"
        ),
        pytest.param("huawei", lambda d: d.update(total_count=10**9), id="huawei-total_count"),
        pytest.param(
            "baidu", lambda d: d["result"]["pageInfo"].update(isTruncated=True, nextMarker="m"),
            id="baidu-nextMarker",
        ),
    ],
)  # fmt: skip
def test_a_cloud_that_repeats_a_page_cannot_make_the_list_run_away(
    provider_name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Found by the fuzzer: TI-ONE and Qianfan paged on for ever when every page was the
    same (a TotalCount larger than what is served, a marker that does not advance)."""
    _check(provider_name, _list_reply(provider_name, change))


@pytest.mark.parametrize(
    ("provider_name", "change"),
    [
        pytest.param(
            "tencent",
            lambda d: d["Response"]["ServiceGroups"][0]["Services"][0]["ServiceInfo"].update(
                Replicas=-1
            ),
            id="tencent-Replicas",
        ),
        pytest.param(
            "baidu",
            lambda d: d["result"]["serviceList"][0]["resourceConfig"].update(replicasCount=-1),
            id="baidu-replicasCount",
        ),
        pytest.param(
            "baidu",
            lambda d: d["result"]["serviceList"][0]["resourceConfig"].update(qps=-3),
            id="baidu-qps",
        ),
    ],
)  # fmt: skip
def test_a_negative_replica_count_is_a_classified_error(
    provider_name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Found by `make test-soak` (10,000 Qianfan replies): a negative count escaped the parser
    as a pydantic ValidationError instead of a MalformedResponseError (fixed: `minimum=0`)."""
    _check(provider_name, _list_reply(provider_name, change))
