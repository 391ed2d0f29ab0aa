"""Events posted by the operator itself (events.py): timestamps and message lengths the
apiserver accepts, order, one post in flight, retries in place, a bounded queue, failures
logged and never raised.

The poster runs against an aiohttp server on loopback for order, concurrency and failures, and
against the real apiserver for what it accepts (it refuses Kopf's own timestamps once in a
million events, when the microseconds are 0).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from aiohttp import web
from kubernetes import client

from cloudinfer.main.apiserver import ApiserverConnection, RequestLimiter, bounded_session
from cloudinfer.main.events import EventPoster, event_body, micro_time, shorten, wall_time
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
    in_flight: int = 0
    most_in_flight: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: set[str] = field(default_factory=set)
    unavailable: dict[str, int] = field(default_factory=dict)
    """reason -> how many more posts of it get a 503."""
    attempts: list[str] = field(default_factory=list)


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
            server.attempts.append(body["reason"])
            if server.unavailable.get(body["reason"], 0) > 0:
                server.unavailable[body["reason"]] -= 1
                return web.json_response({"kind": "Status", "code": 503}, status=503)
            if body["reason"] in server.refuse:
                status = {"kind": "Status", "code": 422, "message": "Event is invalid: reason"}
                return web.json_response(status, status=422)
            assert request.path == f"/api/v1/namespaces/{body['metadata']['namespace']}/events"
            server.received.append(body)
            return web.json_response(body, status=201)
        finally:
            server.in_flight -= 1

    async with serve_on_loopback(handle) as server.url:
        yield server


def run_with_poster(
    scenario: Callable[[EventPoster, FakeEvents], Any], *, max_queued: int = 100
) -> Any:
    async def main() -> Any:
        async with events_server() as server:
            info = kopf.ConnectionInfo(server=server.url, token="t0ken")
            connection = ApiserverConnection()
            async with bounded_session(info, RequestLimiter()) as session:
                connection.replace(session, server.url)
                poster = EventPoster(
                    connection, max_queued=max_queued, instance="test", retry_delays=(0.01,) * 3
                )
                return await scenario(poster, server)

    return asyncio.run(main())


def test_events_go_out_in_order_one_at_a_time() -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> list[str]:
        for i in range(30):
            poster.post(service(f"s{i}", "b"), "Normal", "CloudWrite", f"write {i}")
        await poster.flush(10)
        return [e["message"] for e in server.received] + [str(server.most_in_flight)]

    *messages, most_in_flight = run_with_poster(scenario)
    assert messages == [f"write {i}" for i in range(30)]
    assert most_in_flight == "1"


def test_a_full_queue_drops_the_oldest_events_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[list[str], int]:
        server.gate.clear()  # the apiserver stops answering
        for i in range(12):
            poster.post(service(), "Normal", "CloudWrite", f"write {i}")
            await asyncio.sleep(0)  # the first is taken off the queue and hangs
        server.gate.set()
        await poster.flush(10)
        return [e["message"] for e in server.received], poster.dropped

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        messages, dropped = run_with_poster(scenario, max_queued=5)
    # One was in flight, five fit the queue: the six in between were dropped, not the newest.
    assert messages == ["write 0", *(f"write {i}" for i in range(7, 12))]
    assert dropped == 6
    assert "1 events dropped so far" in caplog.text


def test_a_refused_event_is_logged_with_the_apiservers_reason_and_the_rest_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> list[str]:
        server.refuse.add("Bad")
        poster.post(service(), "Warning", "Bad", "refused")
        poster.post(service(), "Normal", "Good", "kept")
        await poster.flush(10)
        return [e["message"] for e in server.received]

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        assert run_with_poster(scenario) == ["kept"]
    assert (
        "could not post event Warning Bad about InferenceService a/chat: "
        "HTTP 422: Event is invalid: reason"
    ) in caplog.text


def test_a_post_the_apiserver_cannot_take_now_is_retried_in_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
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
        received, attempts = run_with_poster(scenario)
    assert received == ["first", "second", "third"], "order kept across the retries"
    assert attempts == ["Flaky"] * 3 + ["After"] + ["Down"] * 4 + ["Last"]
    assert "could not post event Normal Down about InferenceService a/chat: HTTP 503" in caplog.text


def test_events_about_objects_without_a_namespace_are_not_posted() -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> list[str]:
        cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
        poster.post(cluster_scoped, "Normal", "Nope", "dropped")
        poster.post(service(), "Normal", "Yes", "posted")
        await poster.flush(10)
        return [e["reason"] for e in server.received]

    assert run_with_poster(scenario) == ["Yes"]


def test_flush_gives_up_after_its_time_and_stops_posting(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(poster: EventPoster, server: FakeEvents) -> tuple[float, list[str]]:
        server.gate.clear()
        poster.post(service(), "Normal", "CloudWrite", "hangs")
        poster.post(service(), "Normal", "CloudWrite", "queued")
        started = asyncio.get_running_loop().time()
        await poster.flush(0.3)
        waited = asyncio.get_running_loop().time() - started
        server.gate.set()
        await asyncio.sleep(0.5)  # a poster still running would post "queued" within ms
        return waited, [e["message"] for e in server.received]

    with caplog.at_level(logging.WARNING, logger="cloudinfer.main.events"):
        waited, received = run_with_poster(scenario)
    # Gave up after its 0.3 s although the post still hangs: the gate opens only after it.
    assert waited >= 0.25
    assert "queued" not in received
    assert "1 events not posted at shutdown" in caplog.text


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
