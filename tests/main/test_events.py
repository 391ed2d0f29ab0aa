"""Events posted by the operator itself (events.py): timestamps and message lengths the
apiserver accepts, a few posts in flight, repeats aggregated into one Event's count, retries
that do not hold the others, a bounded queue, failures counted and logged and never raised.

The poster runs against an aiohttp server on loopback for order, concurrency and failures, and
against the real apiserver for what it accepts (it refuses Kopf's own timestamps once in a
million events, when the microseconds are 0).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from aiohttp import web
from kubernetes import client

from cloudinfer.main.apiserver import ApiserverConnection, RequestLimiter, bounded_session
from cloudinfer.main.events import (
    POSTERS,
    REPEAT_WINDOW,
    EventPoster,
    event_body,
    micro_time,
    shorten,
    wall_time,
)
from support import Cluster, serve_on_loopback

UTC = datetime.UTC
ON_THE_SECOND = datetime.datetime(2026, 12, 2, 14, 0, 55, tzinfo=UTC)
BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def service(name: str = "chat", namespace: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "cloudinfer.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-1", "generation": 3},
        "spec": {"replicas": 2},
    }


@pytest.mark.parametrize(
    ("when", "micro", "wall"),
    [
        (ON_THE_SECOND, "2026-12-02T14:00:55.000000Z", "2026-12-02T14:00:55Z"),
        (
            ON_THE_SECOND.replace(microsecond=7),
            "2026-12-02T14:00:55.000007Z",
            "2026-12-02T14:00:55Z",
        ),
        (
            datetime.datetime(2026, 12, 2, 22, 0, 1, 500000, tzinfo=BEIJING),
            "2026-12-02T14:00:01.500000Z",
            "2026-12-02T14:00:01Z",
        ),
    ],
    ids=["microseconds-zero", "microseconds-small", "other-time-zone"],
)
def test_timestamps_have_the_api_types_formats(
    when: datetime.datetime, micro: str, wall: str
) -> None:
    assert (micro_time(when), wall_time(when)) == (micro, wall)


@pytest.mark.parametrize(
    ("message", "limit", "expected"),
    [
        ("short", 1024, "short"),
        ("x" * 1024, 1024, "x" * 1024),
        ("x" * 1025, 1024, "x" * 1021 + "..."),
        # Three bytes a character: cut on a character boundary, never mid-character.
        ("服务状态不支持扩缩容", 12, "服务状..."),
        ("服务状态不支持扩缩容", 13, "服务状..."),
        ("ab服务", 7, "ab..."),
    ],
    ids=["fits", "exactly", "one-over", "cjk", "cjk-between", "mixed"],
)
def test_messages_are_cut_to_the_apis_byte_limit(message: str, limit: int, expected: str) -> None:
    assert shorten(message, limit) == expected
    assert len(shorten(message, limit).encode()) <= limit


def test_an_event_names_the_object_and_keeps_messages_under_the_apis_limit() -> None:
    body = event_body(
        service(), "Warning", "CloudWrite", "x" * 5000, when=ON_THE_SECOND, instance="pod-1"
    )
    assert body["involvedObject"] == {
        "apiVersion": "cloudinfer.dev/v1alpha1",
        "kind": "InferenceService",
        "name": "chat",
        "namespace": "a",
        "uid": "u-1",
    }
    assert body["metadata"] == {"generateName": "chat.", "namespace": "a"}
    assert len(body["message"]) == 1024 and body["message"].endswith("...")
    chinese = event_body(service(), "Warning", "X", "服务" * 1000, when=ON_THE_SECOND, instance="i")
    assert len(chinese["message"].encode()) <= 1024
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "CloudWrite", 1)
    assert body["eventTime"] == "2026-12-02T14:00:55.000000Z"
    assert body["reportingInstance"] == "pod-1"


# -- the poster against a loopback server ------------------------------------------------------


@dataclass
class FakeEvents:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    """Created Events, patched in place."""
    patches: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: set[str] = field(default_factory=set)
    unavailable: dict[str, int] = field(default_factory=dict)
    """reason -> how many more posts of it get a 503."""
    attempts: list[str] = field(default_factory=list)

    def named(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.received if e["metadata"]["name"] == name), None)


@asynccontextmanager
async def events_server() -> AsyncIterator[FakeEvents]:
    server = FakeEvents()
    server.gate.set()

    async def handle(request: web.Request) -> web.Response:
        server.in_flight += 1
        server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            await server.gate.wait()
            await asyncio.sleep(0.005)
            body = await request.json()
            if request.method == "PATCH":
                assert request.content_type == "application/merge-patch+json"
                event = server.named(request.path.rsplit("/", 1)[1])
                if event is None:
                    return web.json_response({"kind": "Status", "code": 404}, status=404)
                server.patches.append(body)
                event.update(body)
                return web.json_response(event)
            server.attempts.append(body["reason"])
            if server.unavailable.get(body["reason"], 0) > 0:
                server.unavailable[body["reason"]] -= 1
                return web.json_response({"kind": "Status", "code": 503}, status=503)
            if body["reason"] in server.refuse:
                status = {"kind": "Status", "code": 422, "message": "Event is invalid: reason"}
                return web.json_response(status, status=422)
            assert request.path == f"/api/v1/namespaces/{body['metadata']['namespace']}/events"
            name = f"{body['metadata']['generateName']}{len(server.received)}"
            body["metadata"] = {**body["metadata"], "name": name}
            server.received.append(body)
            return web.json_response(body, status=201)
        finally:
            server.in_flight -= 1

    async with serve_on_loopback(handle) as server.url:
        yield server


def run_with_poster(scenario: Callable[[EventPoster, FakeEvents], Any], **options: Any) -> Any:
    async def main() -> Any:
        async with events_server() as server:
            info = kopf.ConnectionInfo(server=server.url, token="t0ken")
            connection = ApiserverConnection()
            async with bounded_session(info, RequestLimiter()) as session:
                connection.replace(session, server.url)
                poster = EventPoster(
                    connection, instance="test", retry_delays=(0.01,) * 3,
                    **{"max_queued": 100, **options},
                )  # fmt: skip
                return await scenario(poster, server)

    return asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    """Wait (generously) for `condition`; it is about order of events, not speed."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the fake server's counters
            await asyncio.sleep(0.001)


def test_events_go_out_a_few_at_a_time_and_all_arrive() -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[list[str], int, int]:
        server.gate.clear()
        for i in range(30):
            poster.post(service(f"s{i}", "b"), "Normal", "CloudWrite", f"write {i}")
        await until(lambda: server.in_flight == POSTERS)
        await asyncio.sleep(0.05)  # room for a fifth, if the bound did not hold
        in_flight_while_held = server.in_flight
        server.gate.set()
        await poster.flush(10)
        return [e["message"] for e in server.received], in_flight_while_held, poster.requests

    messages, held, requests = run_with_poster(scenario)
    assert sorted(messages) == sorted(f"write {i}" for i in range(30))
    assert held == POSTERS, "several posts in flight, never more than the pool"
    assert requests == 30


def test_repeats_of_an_event_bump_its_count_instead_of_creating_events() -> None:
    clock = [ON_THE_SECOND]

    async def scenario(poster: EventPoster, server: FakeEvents) -> FakeEvents:
        server.gate.clear()
        for _ in range(50):
            poster.post(service(), "Warning", "CloudThrottled", "throttled")
        poster.post(service(), "Warning", "CloudThrottled", "another message")
        poster.post(service("other"), "Warning", "CloudThrottled", "throttled")
        await until(lambda: server.in_flight == 3)
        clock[0] += datetime.timedelta(seconds=30)
        for _ in range(20):  # while the first is in flight: one PATCH after it
            poster.post(service(), "Warning", "CloudThrottled", "throttled")
        server.gate.set()
        await poster.flush(10)
        clock[0] += datetime.timedelta(minutes=9)  # within the window: the same Event again
        poster.post(service(), "Warning", "CloudThrottled", "throttled")
        await poster.flush(10)
        return server

    server = run_with_poster(scenario, clock=lambda: clock[0])
    counts = sorted(
        (e["involvedObject"]["name"], e["message"], e["count"]) for e in server.received
    )
    # The first post took 1 (the rest came while it was out), its PATCHes 49 + 20, then 1.
    assert counts == [("chat", "another message", 1), ("chat", "throttled", 71),
                      ("other", "throttled", 1)]  # fmt: skip
    assert [p["count"] for p in server.patches] == [70, 71]
    repeated = next(e for e in server.received if e["count"] == 71)
    assert repeated["series"] == {"count": 71, "lastObservedTime": micro_time(clock[0])}
    assert repeated["lastTimestamp"] == wall_time(clock[0])
    assert repeated["firstTimestamp"] == wall_time(ON_THE_SECOND), "the first stays the first"


def test_a_repeat_after_the_window_or_of_a_deleted_event_is_a_new_event() -> None:
    clock = [ON_THE_SECOND]

    async def scenario(poster: EventPoster, server: FakeEvents) -> list[int]:
        poster.post(service(), "Normal", "CloudWrite", "same")
        await poster.flush(10)
        clock[0] += REPEAT_WINDOW + datetime.timedelta(seconds=1)
        poster.post(service(), "Normal", "CloudWrite", "same")
        await poster.flush(10)
        server.received.pop()  # expired on the apiserver (--event-ttl): the PATCH finds none
        poster.post(service(), "Normal", "CloudWrite", "same")
        await poster.flush(10)
        return [e["count"] for e in server.received]

    assert run_with_poster(scenario, clock=lambda: clock[0]) == [1, 1]


def test_a_full_queue_drops_the_oldest_events_counts_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped: list[tuple[str, int]] = []

    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[list[str], int]:
        server.gate.clear()  # the apiserver stops answering
        for i in range(POSTERS):
            poster.post(service(), "Normal", "CloudWrite", f"write {i}")
        await until(lambda: server.in_flight == POSTERS)
        for i in range(POSTERS, 16):
            poster.post(service(), "Normal", "CloudWrite", f"write {i}")
        for _ in range(10):  # a repeat of a queued event takes no room and drops nothing
            poster.post(service(), "Normal", "CloudWrite", "write 15")
        server.gate.set()
        await poster.flush(10)
        return [e["message"] for e in server.received], poster.dropped

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        messages, total = run_with_poster(
            scenario, max_queued=5, count_dropped=lambda r, n: dropped.append((r, n))
        )
    # Four were in flight, five fit the queue: the seven in between were dropped, not the newest.
    assert sorted(messages) == sorted(f"write {i}" for i in (0, 1, 2, 3, 11, 12, 13, 14, 15))
    assert total == 7
    assert dropped == [("queue_full", 1)] * 7
    assert "1 events dropped so far" in caplog.text


def test_a_refused_event_is_counted_and_logged_with_the_apiservers_reason_and_the_rest_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped: list[tuple[str, int]] = []

    async def scenario(poster: EventPoster, server: FakeEvents) -> list[str]:
        server.refuse.add("Bad")
        poster.post(service(), "Warning", "Bad", "refused")
        poster.post(service(), "Normal", "Good", "kept")
        await poster.flush(10)
        return [e["message"] for e in server.received]

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        received = run_with_poster(scenario, count_dropped=lambda r, n: dropped.append((r, n)))
    assert received == ["kept"]
    assert dropped == [("refused", 1)]
    assert (
        "could not post event Warning Bad about InferenceService a/chat: "
        "HTTP 422: Event is invalid: reason"
    ) in caplog.text


def test_a_post_the_apiserver_cannot_take_now_is_retried_while_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped: list[tuple[str, int]] = []

    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[list[str], list[str]]:
        server.unavailable["Flaky"] = 2  # two 503s, then taken
        server.unavailable["Down"] = 10  # more 503s than attempts
        poster.post(service(), "Normal", "Flaky", "first")
        poster.post(service(), "Normal", "After", "second")
        poster.post(service(), "Normal", "Down", "lost")
        poster.post(service(), "Normal", "Last", "third")
        await poster.flush(10)
        return [e["message"] for e in server.received], server.attempts

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        received, attempts = run_with_poster(
            scenario, count_dropped=lambda r, n: dropped.append((r, n))
        )
    assert sorted(received) == ["first", "second", "third"]
    assert sorted(attempts) == sorted(["Flaky"] * 3 + ["After"] + ["Down"] * 4 + ["Last"])
    assert dropped == [("unavailable", 1)]
    assert "could not post event Normal Down about InferenceService a/chat: HTTP 503" in caplog.text


def test_events_about_objects_without_a_namespace_are_not_posted() -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> list[str]:
        cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
        poster.post(cluster_scoped, "Normal", "Nope", "dropped")
        poster.post(service(), "Normal", "Yes", "posted")
        await poster.flush(10)
        return [e["reason"] for e in server.received]

    assert run_with_poster(scenario) == ["Yes"]


def test_flush_gives_up_after_its_time_counts_what_is_left_and_stops_posting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped: list[tuple[str, int]] = []

    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[float, list[str]]:
        server.gate.clear()
        poster.post(service(), "Normal", "CloudWrite", "hangs")
        poster.post(service(), "Normal", "CloudWrite", "queued")
        await until(lambda: server.in_flight == 2)
        poster.post(service(), "Normal", "CloudWrite", "queued")  # a repeat, behind the first
        started = asyncio.get_running_loop().time()
        await poster.flush(0.3)
        waited = asyncio.get_running_loop().time() - started
        server.gate.set()
        await asyncio.sleep(0.5)  # a poster still running would PATCH "queued" within ms
        return waited, [e["message"] for e in server.received]

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        waited, received = run_with_poster(
            scenario, count_dropped=lambda r, n: dropped.append((r, n))
        )
    # Gave up after its 0.3 s although the posts still hang: the gate opens only after it.
    assert waited >= 0.25
    assert received == [], "the cancelled requests' replies are never read"
    assert "3 events not posted at shutdown" in caplog.text
    assert sorted(dropped) == [("shutdown", 1), ("shutdown", 2)]


# -- what the real apiserver accepts -------------------------------------------------------------


def test_the_apiserver_takes_an_event_on_the_second_which_kopfs_format_loses(
    cluster: Cluster, namespace: str, core_v1: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    involved = core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="subject"))
    )
    subject = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "subject", "namespace": namespace, "uid": involved.metadata.uid},
    }

    async def main() -> tuple[int, int, tuple[int, str]]:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
        assert info is not None
        connection = ApiserverConnection()
        async with bounded_session(info, RequestLimiter()) as session:
            connection.replace(session, info.server)
            poster = EventPoster(connection, clock=lambda: ON_THE_SECOND)
            poster.post(subject, "Normal", "CloudWrite", "on the second")
            await poster.flush(10)
            # Kopf's body for the same moment (datetime.isoformat()), posted as Kopf does.
            kopf_style = event_body(
                subject, "Normal", "KopfStyle", "isoformat", when=ON_THE_SECOND, instance="x"
            )
            kopf_style["eventTime"] = ON_THE_SECOND.isoformat()
            url = f"{info.server}/api/v1/namespaces/{namespace}/events"
            async with session.post(url, json=kopf_style) as response:
                kopf_status = (response.status, await response.text())
            return poster.posted, poster.failed, kopf_status

    posted, failed, kopf_status = asyncio.run(main())
    assert (posted, failed) == (1, 0)
    assert kopf_status[0] == 400, f"the apiserver takes Kopf's format now: {kopf_status}"
    assert "cannot parse" in kopf_status[1], kopf_status
    (event,) = core_v1.list_namespaced_event(namespace).items
    assert (event.reason, event.message, event.type) == ("CloudWrite", "on the second", "Normal")
    assert event.involved_object.uid == involved.metadata.uid
    assert event.event_time == ON_THE_SECOND
    assert event.reporting_component == "cloudinfer-operator"


def post_on_the_apiserver(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, scenario: Callable[[EventPoster], None],
    **options: Any,
) -> EventPoster:  # fmt: skip
    """Run `scenario`'s posts through a poster on the real apiserver, then flush them."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))

    async def main() -> EventPoster:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
        assert info is not None
        connection = ApiserverConnection()
        async with bounded_session(info, RequestLimiter()) as session:
            connection.replace(session, info.server)
            poster = EventPoster(connection, instance="test", **options)
            scenario(poster)
            await poster.flush(120)
            return poster

    return asyncio.run(main())


def test_many_events_posted_at_once_are_all_on_the_apiserver_repeats_as_one_event(
    cluster: Cluster, namespace: str, core_v1: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def burst(poster: EventPoster) -> None:
        for i in range(300):
            poster.post(service(f"s{i}", namespace), "Normal", "CloudWrite", f"write {i}")
            poster.post(service("busy", namespace), "Warning", "CloudThrottled", "throttled")

    poster = post_on_the_apiserver(cluster, monkeypatch, burst)
    assert (poster.posted, poster.dropped, poster.failed) == (600, 0, 0)
    events = core_v1.list_namespaced_event(namespace).items
    writes = sorted(str(e.message) for e in events if e.reason == "CloudWrite")
    assert writes == sorted(f"write {i}" for i in range(300))
    assert all(e.count == 1 for e in events if e.reason == "CloudWrite")
    (repeated,) = (e for e in events if e.reason == "CloudThrottled")
    assert repeated.series is not None
    assert (repeated.count, repeated.series.count) == (300, 300)
    assert repeated.involved_object.name == "busy"
    # One request per new Event, and the 300 repeats in far fewer than 300.
    assert 301 <= poster.requests < 600


def wait_until_refused(core_v1: client.CoreV1Api, namespace: str) -> None:
    """Until the apiserver's admission (from its namespace cache) refuses new objects."""
    probe = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="probe."),
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="held"),
    )
    for _ in range(300):
        try:
            core_v1.create_namespaced_event(namespace, probe)
        except client.ApiException as error:
            if error.status == 403:
                return
            raise
        time.sleep(0.1)
    raise AssertionError(f"namespace {namespace} still takes new objects")


def test_a_namespace_being_deleted_refuses_its_events_without_holding_back_the_others(
    cluster: Cluster, namespace: str, core_v1: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    doomed = f"{namespace}-gone"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=doomed)))
    # A finalizer keeps the namespace Terminating while the events go out.
    held = client.V1ObjectMeta(name="held", finalizers=["cloudinfer.dev/test"])
    core_v1.create_namespaced_config_map(doomed, client.V1ConfigMap(metadata=held))
    core_v1.delete_namespace(doomed)
    wait_until_refused(core_v1, doomed)
    dropped: list[tuple[str, int]] = []
    try:

        def interleaved(poster: EventPoster) -> None:
            for i in range(100):
                poster.post(service(f"s{i}", doomed), "Warning", "ReleasedWithoutStop", f"gone {i}")
                poster.post(service(f"s{i}", namespace), "Normal", "CloudWrite", f"write {i}")

        with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
            poster = post_on_the_apiserver(
                cluster, monkeypatch, interleaved,
                count_dropped=lambda reason, n: dropped.append((reason, n)),
            )  # fmt: skip
    finally:
        core_v1.patch_namespaced_config_map("held", doomed, {"metadata": {"finalizers": None}})
    assert (poster.posted, poster.failed) == (100, 100)
    assert dropped == [("refused", 1)] * 100
    assert "because it is being terminated" in caplog.text
    taken = sorted(str(e.message) for e in core_v1.list_namespaced_event(namespace).items)
    assert taken == sorted(f"write {i}" for i in range(100))
