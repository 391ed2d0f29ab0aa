"""The start-up inventory (main/inventory.py): one paginated listing fills the registries
before `ready`, an event always wins over the listing, and an object the listing saw but no
event ever confirmed is read once and forgotten if it is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from cloudinfer.main import inventory
from cloudinfer.main.inventory import Inventory, Key, list_scopes, served


def body(namespace: str, name: str, service: str = "svc") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"serviceId": service}}


class Source:
    def __init__(self, objects: dict[str, list[dict[str, Any]]], page: int = 2) -> None:
        self.objects = objects
        self.page = page
        self.lists: list[tuple[str, str | None]] = []
        self.reads: list[tuple[str, str, str]] = []
        self.existing: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.gate = asyncio.Event()
        self.gate.set()

    async def list_pages(
        self, plural: str, namespace: str | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        self.lists.append((plural, namespace))
        items = [
            b for b in self.objects.get(plural, [])
            if namespace is None or b["metadata"]["namespace"] == namespace
        ]  # fmt: skip
        for start in range(0, len(items), self.page):
            await self.gate.wait()
            yield items[start : start + self.page]

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((plural, namespace, name))
        return self.existing.get((plural, namespace, name))


class Sink:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, Key], Mapping[str, Any]] = {}

    def seen(self, plural: str, key: Key, body: Mapping[str, Any]) -> None:
        self.objects[(plural, key)] = body

    def gone(self, plural: str, key: Key) -> None:
        self.objects.pop((plural, key), None)


def test_every_page_of_both_kinds_is_in_before_ready() -> None:
    async def scenario() -> tuple[Sink, Source, int]:
        services = [body("a", f"s{i}") for i in range(5)]
        source = Source({"inferenceservices": services, "cloudaccounts": [body("a", "acct")]})
        sink = Sink()
        inv = Inventory(source, sink, ())
        inv.start()
        await asyncio.wait_for(inv.ready.wait(), 5)
        provisional = inv.provisional
        await inv.close()
        return sink, source, provisional

    sink, source, provisional = asyncio.run(scenario())
    assert len(sink.objects) == 6
    assert ("inferenceservices", ("a", "s4")) in sink.objects
    assert source.lists == [("cloudaccounts", None), ("inferenceservices", None)]
    assert provisional == 6


def test_an_event_during_the_listing_wins_over_the_listed_copy() -> None:
    async def scenario() -> Sink:
        listed = [body("a", "x", service="old")]
        source = Source({"inferenceservices": listed})
        source.gate.clear()
        sink = Sink()
        inv = Inventory(source, sink, ())
        inv.start()
        await asyncio.sleep(0.01)
        # The watch reports a newer spec (and then the object's deletion, for "y") before
        # the listing's page arrives.
        inv.event("inferenceservices", ("a", "x"))
        sink.seen("inferenceservices", ("a", "x"), body("a", "x", service="new"))
        source.gate.set()
        await asyncio.wait_for(inv.ready.wait(), 5)
        await inv.close()
        return sink

    sink = asyncio.run(scenario())
    assert sink.objects[("inferenceservices", ("a", "x"))]["spec"]["serviceId"] == "new"


def test_a_listed_object_no_event_confirms_is_read_and_forgotten_when_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inventory, "SETTLE_SECONDS", 0.05)

    async def scenario() -> tuple[Sink, Source]:
        source = Source(
            {"inferenceservices": [body("a", "kept"), body("a", "gone"), body("a", "w")]}
        )
        source.existing[("inferenceservices", "a", "kept")] = body("a", "kept")
        sink = Sink()
        inv = Inventory(source, sink, ())
        inv.start()
        await asyncio.wait_for(inv.ready.wait(), 5)
        inv.event("inferenceservices", ("a", "w"))  # Kopf's own listing confirms this one
        for _ in range(100):
            if inv.provisional == 0:
                break
            await asyncio.sleep(0.02)
        await inv.close()
        return sink, source

    sink, source = asyncio.run(scenario())
    assert sorted(source.reads) == [
        ("inferenceservices", "a", "gone"),
        ("inferenceservices", "a", "kept"),
    ]
    assert ("inferenceservices", ("a", "gone")) not in sink.objects
    assert ("inferenceservices", ("a", "kept")) in sink.objects
    assert ("inferenceservices", ("a", "w")) in sink.objects


def test_namespaces_are_listed_one_by_one_unless_a_glob_asks_for_all() -> None:
    assert list_scopes(()) == (None,)
    assert list_scopes(("a", "b", "a")) == ("a", "b")
    assert list_scopes(("a", "t-*")) == (None,)
    assert served("t-1", ("a", "t-*")) and served("a", ("a", "t-*"))
    assert not served("b", ("a", "t-*"))
    assert served("anything", ())


def test_a_glob_lists_all_namespaces_and_keeps_only_the_served_ones() -> None:
    async def scenario() -> Sink:
        source = Source({"inferenceservices": [body("t-1", "x"), body("other", "y")]})
        sink = Sink()
        inv = Inventory(source, sink, ("t-*",))
        inv.start()
        await asyncio.wait_for(inv.ready.wait(), 5)
        await inv.close()
        return sink

    sink = asyncio.run(scenario())
    assert list(sink.objects) == [("inferenceservices", ("t-1", "x"))]


class WatchedSource(Source):
    """Lists with a resourceVersion and serves scripted watch requests: each a list of events,
    or WatchExpired (410) to make the inventory list again."""

    def __init__(
        self,
        listings: list[list[dict[str, Any]]],
        watches: list[list[tuple[str, dict[str, Any]]] | None],
    ) -> None:
        super().__init__({})
        self.listings = listings
        self.watches = watches
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def list_versioned(
        self, plural: str, namespace: str | None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        self.lists.append((plural, namespace))
        if plural != "inferenceservices":
            return
        yield self.listings.pop(0), f"list{len(self.lists)}"

    async def watch(
        self, plural: str, namespace: str | None, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()  # a quiet stream
        events = self.watches.pop(0)
        if events is None:
            raise inventory.WatchExpired("410")
        for event in events:
            yield event


def versioned(namespace: str, name: str, version: str, service: str = "svc") -> dict[str, Any]:
    found = body(namespace, name, service)
    found["metadata"]["resourceVersion"] = version
    return found


def test_watched_services_follow_the_watch_and_a_410_lists_them_again() -> None:
    async def scenario() -> tuple[Sink, WatchedSource]:
        source = WatchedSource(
            listings=[
                [versioned("a", "x", "1"), versioned("a", "y", "2")],
                [versioned("a", "x", "7", service="newer"), versioned("a", "w", "8")],
            ],
            watches=[
                [
                    ("ADDED", versioned("a", "z", "3")),
                    ("MODIFIED", versioned("a", "x", "4", service="edited")),
                    ("DELETED", versioned("a", "y", "5")),
                    ("BOOKMARK", {"metadata": {"resourceVersion": "6"}}),
                ],
                None,  # expired: z was deleted and w created while nothing watched
                [("MODIFIED", versioned("other", "ignored", "9"))],
            ],
        )
        sink = Sink()
        inv = Inventory(source, sink, ("a",), watched=("inferenceservices",))
        inv.start()
        await asyncio.wait_for(source.done.wait(), 5)
        await inv.close()
        return sink, source

    sink, source = asyncio.run(scenario())
    assert {key: b["spec"]["serviceId"] for (_, key), b in sink.objects.items()} == {
        ("a", "x"): "newer",
        ("a", "w"): "svc",
    }
    # After the listing, from its version; after a bookmark, from the bookmark's; after the
    # second listing, from that one's; then on from the last event's.
    assert source.watched_from == ["list2", "6", "list3", "9"]
