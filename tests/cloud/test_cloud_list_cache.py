"""A list item unchanged since the account's last list is not parsed again (issue 19,
cloud/listcache.py); a changed one is, and one gone from the list is forgotten with it."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_cloud_tencent_contract import make_rig

from cloudinfer.cloud.errors import MalformedResponseError
from cloudinfer.cloud.exchange import json_object
from cloudinfer.cloud.http_client import new_async_client
from cloudinfer.cloud.listcache import ParsedItems, item_digest
from cloudinfer.cloud.model import ObservedService
from cloudinfer.cloud.tencent import provider as tencent_provider
from cloudinfer.cloud.tencent.envelope import body_key, unwrap
from cloudinfer.cloud.tencent.parse import CAPABILITIES, FALLBACK_CAPABILITIES
from cloudinfer.cloud.tencent.provider import TencentProvider, new_tencent_budgets


class Parses:
    """A parse function that records which items it was asked for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def of(self, item: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        def parse() -> dict[str, Any]:
            self.calls.append(str(item["id"]))
            return dict(item)  # a new object each time it is really parsed

        return parse


def _list(
    cache: ParsedItems[dict[str, Any]],
    parses: Parses,
    items: list[dict[str, Any]],
    *,
    account: str = "a",
    context: object = "ctx",
    complete: bool = True,
) -> list[dict[str, Any]]:
    listing = cache.listing(account, context)
    parsed = [listing.parse(item, parses.of(item)) for item in items]
    if complete:
        listing.done()
    return parsed


def test_an_unchanged_item_gives_back_the_object_parsed_last_time() -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    items = [{"id": "s1", "replicas": 2}, {"id": "s2", "replicas": 3}]
    first = _list(cache, parses, items)
    again = _list(cache, parses, [dict(i) for i in items])  # equal, not the same dicts
    assert parses.calls == ["s1", "s2"]
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_a_changed_item_is_parsed_again_and_only_it() -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    first = _list(cache, parses, [{"id": "s1", "replicas": 2}, {"id": "s2", "replicas": 3}])
    parses.calls.clear()
    again = _list(cache, parses, [{"id": "s1", "replicas": 5}, {"id": "s2", "replicas": 3}])
    assert parses.calls == ["s1"]
    assert again[0] == {"id": "s1", "replicas": 5}
    assert again[1] is first[1]


@pytest.mark.parametrize(
    "changed",
    [
        {"id": "s1", "replicas": 2.0},  # a float where an integer was: parsers tell them apart
        {"id": "s1", "replicas": True},
        {"replicas": 2, "id": "s1"},  # the same fields in another order: parsed again, safely
        {"id": "s1", "replicas": 2, "extra": None},
    ],
)
def test_items_that_compare_equal_in_python_but_differ_in_json_are_parsed_again(
    changed: dict[str, Any],
) -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    _list(cache, parses, [{"id": "s1", "replicas": 2}])
    parses.calls.clear()
    _list(cache, parses, [changed])
    assert parses.calls == ["s1"]


def test_an_item_gone_from_a_complete_list_is_forgotten() -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    s1, s2 = {"id": "s1"}, {"id": "s2"}
    first = _list(cache, parses, [s1, s2])
    _list(cache, parses, [s1])
    parses.calls.clear()
    back = _list(cache, parses, [s1, s2])
    assert parses.calls == ["s2"]  # parsed anew, not taken from two lists ago
    assert back[1] is not first[1] and back[0] is first[0]


def test_a_list_that_did_not_complete_replaces_nothing() -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    s1, s2 = {"id": "s1"}, {"id": "s2"}
    first = _list(cache, parses, [s1, s2])
    _list(cache, parses, [s1], complete=False)  # e.g. its second page failed
    parses.calls.clear()
    again = _list(cache, parses, [s1, s2])
    assert parses.calls == []
    assert again[1] is first[1]


def test_nothing_is_reused_across_a_changed_context_or_another_account() -> None:
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    item = {"id": "s1"}
    _list(cache, parses, [item], context=CAPABILITIES)
    _list(cache, parses, [item], context=FALLBACK_CAPABILITIES)
    _list(cache, parses, [item], context=FALLBACK_CAPABILITIES, account="b")
    assert parses.calls == ["s1", "s1", "s1"]
    _list(cache, parses, [item], context=FALLBACK_CAPABILITIES)
    assert parses.calls == ["s1", "s1", "s1"]


@pytest.mark.parametrize(
    "body",
    [b'{"id": "s1", "limit": NaN}', b'{"id": "s1", "limit": Infinity}'],
    ids=["nan", "infinity"],
)
def test_an_item_with_no_exact_json_encoding_is_parsed_every_time(body: bytes) -> None:
    """The standard decoder reads NaN and Infinity; orjson would encode them as null, so
    such an item must not share a digest with the same item holding null."""
    decoded = json_object(httpx.Response(200, content=body))
    assert decoded is not None and not math.isfinite(decoded["limit"])
    assert item_digest(decoded) is None
    assert item_digest({"id": "s1", "limit": 2**70}) is None
    cache: ParsedItems[dict[str, Any]] = ParsedItems()
    parses = Parses()
    _list(cache, parses, [{"id": "s1", "limit": None}])
    _list(cache, parses, [decoded])
    _list(cache, parses, [decoded])
    assert parses.calls == ["s1", "s1", "s1"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1, "b": [true, null, "x"]}', {"a": 1, "b": [True, None, "x"]}),
        ('{"a": "é"}'.encode("utf-16"), {"a": "é"}),  # not UTF-8: the standard decoder reads it
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 byte-order mark, likewise
        (b'{"a": "\\ud800"}', {"a": "\ud800"}),  # a lone surrogate, likewise
        (b"[1, 2]", None),
        (b"<html>gateway</html>", None),
    ],
)
def test_bodies_decode_as_the_standard_decoder_reads_them(
    body: bytes, expected: dict[str, Any] | None
) -> None:
    assert json_object(httpx.Response(200, content=body)) == expected
    if expected is not None:
        assert expected == json.loads(body)


# ----- the TI-ONE provider ---------------------------------------------------------------------


def test_tione_lists_reuse_unchanged_services_and_see_every_change() -> None:
    rig = make_rig(services=250)  # three pages
    edited, removed = "ms-00007-1", "ms-00150-1"

    async def lists(provider: TencentProvider) -> tuple[list[ObservedService], ...]:
        first = await provider.list_services(rig.account)
        rig.sim.console_edit(rig.sim.get_service(edited), {"replicas": 5})
        # Deleted in the console: the simulator's groups are what its list reads.
        scope = rig.sim.groups[("acct", "ap-guangzhou")]
        del scope[next(g for g, group in scope.items() if group[0].service_id == removed)]
        second = await provider.list_services(rig.account)
        return first, second

    first, second = rig.run(lists)
    before = {s.service_id: s for s in first}
    after = {s.service_id: s for s in second}
    assert len(before) == 250 and set(after) == set(before) - {removed}
    assert before[edited].replicas.desired == 2 and after[edited].replicas.desired == 5
    assert after[edited] is not before[edited]
    unchanged = set(after) - {edited}
    assert all(after[sid] is before[sid] for sid in unchanged)
    assert gc.isenabled()


def _tione_pages(pages: list[dict[str, Any]], calls: list[int]) -> httpx.MockTransport:
    """A TI-ONE endpoint answering each list call with the next of `pages`."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["Offset"])
        body = {**pages[len(calls) - 1], "RequestId": "req-1"}
        return httpx.Response(200, json={"Response": body})

    return httpx.MockTransport(handler)


def _service(sid: str, replicas: Any = 1) -> dict[str, Any]:
    return {"ServiceId": sid, "ServiceGroupId": sid[:-2], "Status": "Normal",
            "ServiceInfo": {"Replicas": replicas}}  # fmt: skip


def _group(*services: dict[str, Any]) -> dict[str, Any]:
    return {"ServiceGroupId": services[0]["ServiceGroupId"], "Services": list(services)}


@pytest.mark.parametrize(
    ("second_page", "message"),
    [
        ({"ServiceGroups": [_group(_service("ms-a-1"))], "TotalCount": 300},
         "repeats groups already listed"),
        ({"ServiceGroups": [_group(_service("ms-b-1", replicas="two"))], "TotalCount": 300},
         "Replicas should be an integer"),
        ({"ServiceGroups": [_group(_service("ms-b-1"))], "TotalCount": "many"},
         "TotalCount should be an integer"),
    ],
    ids=["repeated-groups", "bad-item", "bad-total"],
)  # fmt: skip
def test_a_page_that_does_not_parse_ends_the_list_at_once_and_is_not_asked_again(
    second_page: dict[str, Any], message: str
) -> None:
    rig = make_rig()
    first_page = {"ServiceGroups": [_group(_service("ms-a-1"))], "TotalCount": 300}
    calls: list[int] = []
    transport = _tione_pages([first_page, second_page, first_page], calls)
    seen: list[str] = []

    async def run() -> str:
        async with new_async_client(transport=transport, trust_env=False) as client:
            provider = TencentProvider(
                client, clock=rig.clock, budgets=new_tencent_budgets(rig.clock)
            )
            with pytest.raises(MalformedResponseError) as raised:
                await provider.list_services(rig.account, lambda s: seen.append(s.service_id))
            return str(raised.value)

    assert message in rig.clock.run(run())
    assert gc.isenabled()
    assert calls == [0, 100], "a page that does not parse is not asked for again"
    # The services of a page read whole went out as it came, as before the cache.
    assert seen == (["ms-a-1", "ms-b-1"] if "TotalCount should" in message else ["ms-a-1"])


def test_qianfan_lists_reuse_unchanged_services_and_see_every_change() -> None:
    from test_cloud_baidu_contract import make_rig as make_qianfan_rig  # noqa: PLC0415

    from cloudinfer.cloud.baidu.provider import BaiduProvider  # noqa: PLC0415

    rig = make_qianfan_rig(services=150)  # two pages
    edited, removed = "svco-00003", "svco-00120"

    async def lists(provider: BaiduProvider) -> tuple[list[ObservedService], ...]:
        first = await provider.list_services(rig.account)
        rig.sim.console_edit(rig.sim.store.get(edited), {"units": {"cu-3": 4}})
        # Deleted in the console: the simulator's order is what its list reads.
        order = rig.sim.order["acct"]
        order.remove(next(s for s in order if s.service_id == removed))
        second = await provider.list_services(rig.account)
        return first, second

    first, second = rig.run(lists)
    before = {s.service_id: s for s in first}
    after = {s.service_id: s for s in second}
    assert len(before) == 150 and set(after) == set(before) - {removed}
    assert before[edited].replicas.desired == 1 and after[edited].replicas.desired == 4
    assert all(after[sid] is before[sid] for sid in set(after) - {edited})


# ----- a TI-ONE page unchanged but for its request id ------------------------------------------


def _body(groups: str, request_id: str = "5f1c-0a") -> bytes:
    return (
        b'{"Response": {"ServiceGroups": ['
        + groups.encode()
        + b'], "TotalCount": 1, '
        + (b'"RequestId": "' + request_id.encode() + b'"}}')
    )


def test_bodies_that_differ_only_in_the_trailing_request_id_share_a_key() -> None:
    def key(body: bytes) -> tuple[bytes, str] | None:
        return body_key(httpx.Response(200, content=body))

    first, second = key(_body("1")), key(_body("1", "77e0-9b"))
    assert first is not None and second is not None
    assert first[0] == second[0] and (first[1], second[1]) == ("5f1c-0a", "77e0-9b")
    assert key(_body("2"))[0] != first[0]  # type: ignore[index]
    # Not a request id the key may leave out: not last, not plain, or not closing the body.
    assert key(b'{"Response": {"RequestId": "5f1c", "TotalCount": 1}}') is None
    assert key(b'{"Response": {"TotalCount": 1, "RequestId": "a\\"b"}}') is None
    assert key(b'{"Response": {"TotalCount": 1, "RequestId": 7}}') is None
    assert key(b'{"Response": {"TotalCount": 1}, "RequestId": "5f1c"}') is None


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    decoded: list[int] = []

    def counting(response: httpx.Response, *, action: str) -> Any:
        decoded.append(1)
        return unwrap(response, action=action)

    monkeypatch.setattr(tencent_provider, "unwrap", counting)
    return decoded


def test_a_tione_page_unchanged_but_for_its_request_id_is_not_decoded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = _count_decodes(monkeypatch)
    rig = make_rig(services=250)  # three pages
    edited = "ms-00007-1"

    async def lists(provider: TencentProvider) -> tuple[list[ObservedService], ...]:
        first = await provider.list_services(rig.account)
        second = await provider.list_services(rig.account)
        rig.sim.console_edit(rig.sim.get_service(edited), {"replicas": 5})
        third = await provider.list_services(rig.account)
        return first, second, third

    first, second, third = rig.run(lists)
    assert len(decoded) == 3 + 0 + 1  # the third list decodes only the edited service's page
    assert all(a is b for a, b in zip(first, second, strict=True))
    after = {s.service_id: s for s in third}
    assert after[edited].replicas.desired == 5
    assert all(s is after[s.service_id] for s in first if s.service_id != edited)
    # The request ids differ from call to call: the pages were not byte-identical.
    ids = {c["request_id"] for c in rig.calls("DescribeModelServiceGroups")}
    assert len(ids) == 9


def test_a_known_page_is_still_checked_against_the_pages_before_it() -> None:
    rig = make_rig()
    a, b = _group(_service("ms-a-1")), _group(_service("ms-b-1"))
    pages = [
        {"ServiceGroups": [a], "TotalCount": 200},
        {"ServiceGroups": [b], "TotalCount": 200},
        {"ServiceGroups": [b], "TotalCount": 200},  # now the first page holds b
        {"ServiceGroups": [b], "TotalCount": 200},  # as known from the first list
    ]
    calls: list[int] = []
    transport = _tione_pages(pages, calls)

    async def run() -> str:
        async with new_async_client(transport=transport, trust_env=False) as client:
            provider = TencentProvider(
                client, clock=rig.clock, budgets=new_tencent_budgets(rig.clock)
            )
            assert len(await provider.list_services(rig.account)) == 2
            with pytest.raises(MalformedResponseError) as raised:
                await provider.list_services(rig.account)
            return str(raised.value)

    assert "the page at Offset 100 repeats groups already listed (TotalCount 200)" in (
        rig.clock.run(run())
    )
    assert calls == [0, 100, 0, 100]
