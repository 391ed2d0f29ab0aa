"""Kubernetes Events, posted by the operator itself: a few at a time, repeats aggregated.

Kopf's poster writes `eventTime` with `isoformat()`, which drops the fraction when the
microseconds are 0, and the apiserver refuses such a MicroTime ("cannot parse +00:00 as
.000000"). That is one event in a million, and it happened: one of 3,061 `CloudWrite` events
of a benchmark run was lost (bench/README.md). Here every timestamp has its API type's format.

`POSTERS` tasks post from a bounded queue, so a burst (one `CloudWrite` per cloud write, 20 a
second per action and account) holds a few apiserver connections, not one each; one poster
at a time dropped 22,600 events at N = 10,000 on a loaded apiserver. An event identical to
one already posted (same object, type, reason and message, within `REPEAT_WINDOW`) is not a
new Event: the existing one gets its `count` and `series` bumped by a PATCH, as Kubernetes'
own recorder does, and repeats that arrive while one is waiting to go out ride on that one
request. A post the apiserver could not take now (no connection, a timeout, 429, 5xx) is
retried with backoff by its poster while the others go on; a refusal (400, 403, 422: a
namespace being deleted refuses every new object) is not retried. When the queue is full the
oldest waiting event is dropped rather than memory growing. Every event not posted is counted
in `cloudinfer_events_dropped_total` and logged (the first, then one in `LOG_EVERY`). At
shutdown what is queued gets a few seconds to go out. docs/observability.md explains it.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from cloudinfer.main.apiserver import (
    CONNECTION,
    ApiserverConnection,
    decode,
    path_segment,
    status_message,
)
from cloudinfer.main.settings import pod_name

COMPONENT: Final = "cloudinfer-operator"
MAX_QUEUED: Final = 1000
"""Distinct events waiting to be posted; repeats of a waiting one take no room."""
POSTERS: Final = 4
"""Posts in flight at once: enough to follow 40 writes a second on a loaded apiserver, few
against its `--max-requests-inflight` (events skip the operator's own request queue)."""
REPEAT_WINDOW: Final = datetime.timedelta(minutes=10)
"""An identical event within this long of the last is a repeat (client-go's correlator
keeps its keys in an LRU cache; Events expire after the apiserver's `--event-ttl`, 1 h)."""
MAX_REMEMBERED: Final = 4096
"""Posted events remembered for aggregation (client-go's cache size)."""
MAX_MESSAGE_BYTES: Final = 1024
"""The apiserver refuses an event message over 1,024 bytes (UTF-8: cloud errors in Chinese
reach that at ~340 characters)."""
POST_TIMEOUT: Final = aiohttp.ClientTimeout(total=10, sock_connect=5)
RETRY_DELAYS: Final = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds between attempts of one post (31 s in all, about Kopf's 54 s)."""
NOT_FOUND: Final = 404
TOO_MANY_REQUESTS: Final = 429
SERVER_ERROR: Final = 500
LOG_EVERY: Final = 100
"""After the first, one warning per this many dropped or lost events."""

DropCounter = Callable[[str, int], None]
"""Called with a reason (`queue_full`, `refused`, `unavailable`, `shutdown`) and how many
events were not posted for it (the metric's `inc`)."""

log = logging.getLogger(__name__)


def micro_time(when: datetime.datetime) -> str:
    """`metav1.MicroTime`: RFC 3339 with exactly six fractional digits, in UTC."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wall_time(when: datetime.datetime) -> str:
    """`metav1.Time`: RFC 3339 to the second, in UTC."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shorten(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`message` within `limit` UTF-8 bytes, cut on a character boundary, marked by "..."."""
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def event_body(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, *,
    when: datetime.datetime, instance: str,
) -> dict[str, Any]:  # fmt: skip
    """A core/v1 Event about the namespaced object whose body is `involved`."""
    meta = involved.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": shorten(message),
        "action": reason,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": wall_time(when),
        "lastTimestamp": wall_time(when),
        "eventTime": micro_time(when),
        "count": 1,
    }


class _Retry(Exception):
    """The apiserver could not take the request now; `problem` says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _Gone(Exception):
    """The Event to bump no longer exists (expired, or deleted): post a new one."""


Key = tuple[str, str, str, str, str, str, str]
"""namespace, involved kind, name and uid, type, reason, message: what makes a repeat."""


@dataclass
class _Series:
    """One Event and its occurrences: those on the apiserver and those still to send."""

    body: dict[str, Any]
    first: datetime.datetime
    last: datetime.datetime
    name: str | None = None
    """The Event's name once created."""
    posted: int = 0
    """Occurrences the Event on the apiserver counts."""
    unsent: int = 0
    sending: int = 0
    """Occurrences in the request in flight."""
    queued: bool = False

    @property
    def in_flight(self) -> bool:
        return self.sending > 0


class EventPoster:
    """Posts Events from `posters` tasks; `post` never blocks and never raises."""

    def __init__(
        self, connection: ApiserverConnection = CONNECTION, *, max_queued: int = MAX_QUEUED,
        instance: str | None = None, retry_delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        posters: int = POSTERS, repeat_window: datetime.timedelta = REPEAT_WINDOW,
        max_remembered: int = MAX_REMEMBERED, count_dropped: DropCounter | None = None,
    ) -> None:  # fmt: skip
        if posters < 1 or max_queued < 1:
            raise ValueError(f"need a poster and a queue, not {posters} and {max_queued}")
        self._connection = connection
        self._max_queued = max_queued
        self._series: OrderedDict[Key, _Series] = OrderedDict()
        """Every remembered series, least recently used first."""
        self._ready: OrderedDict[Key, None] = OrderedDict()
        """Series with occurrences to send and no request in flight, oldest first."""
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._posters = posters
        self._instance = instance or pod_name()[:128]  # the pod, even on the node's network
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self._window = repeat_window
        self._max_remembered = max(max_remembered, max_queued + posters)
        self._count_dropped = count_dropped
        self.dropped = 0
        """Events pushed out of a full queue, or left at shutdown."""
        self.failed = 0
        """Events refused, or not taken after every retry."""
        self.posted = 0
        """Occurrences the apiserver took (an aggregated repeat counts once)."""
        self.requests = 0
        """POSTs and PATCHes the apiserver answered, successfully or not."""

    def post(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        now = self._clock()
        body = event_body(involved, type_, reason, message, when=now, instance=self._instance)
        namespace = body["metadata"]["namespace"]
        if not namespace:
            log.debug("no %s event: %s is not namespaced", reason, involved.get("kind"))
            return
        obj = body["involvedObject"]
        key: Key = (
            namespace, str(obj["kind"]), str(obj["name"]), str(obj["uid"]), type_, reason,
            body["message"],
        )  # fmt: skip
        series = self._series.get(key)
        if series is None or (
            now - series.last > self._window and not series.unsent and not series.in_flight
        ):
            series = _Series(body=body, first=now, last=now)
            self._series[key] = series
        self._series.move_to_end(key)
        series.last = now
        series.unsent += 1
        self._forget_old()
        if not series.queued and not series.in_flight:
            self._enqueue(key, series)
        self._start()

    def _enqueue(self, key: Key, series: _Series) -> None:
        if len(self._ready) >= self._max_queued:
            oldest, _ = self._ready.popitem(last=False)
            victim = self._series[oldest]
            victim.queued = False
            self._drop(victim, victim.unsent, "queue_full")
            victim.unsent = 0
        self._ready[key] = None
        series.queued = True
        self._idle.clear()
        self._wakeup.set()

    def _forget_old(self) -> None:
        """Keep at most `max_remembered` series: forget the least recently used idle ones."""
        while len(self._series) > self._max_remembered:
            key = next(iter(self._series))
            series = self._series[key]
            if series.queued or series.in_flight:
                self._series.move_to_end(key)  # busy: at most max_queued + posters of these
            else:
                del self._series[key]

    def _start(self) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < self._posters:
            # A context of its own: not the first poster's Kopf context, for the process's life.
            self._tasks.append(
                asyncio.get_running_loop().create_task(
                    self._run(), name="events", context=contextvars.Context()
                )
            )

    async def flush(self, seconds: float) -> None:
        """Wait up to `seconds` for every event to go out, then stop posting (a later
        `post` starts again)."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            left = sum(s.unsent + s.sending for s in self._series.values())
            log.warning("%d events not posted at shutdown", left)
            for series in self._series.values():
                self._drop(series, series.unsent + series.sending, "shutdown", quiet=True)
                series.unsent, series.queued = 0, False
            self._ready.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _run(self) -> None:
        while True:
            if not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key, _ = self._ready.popitem(last=False)
            series = self._series[key]
            series.queued = False
            occurrences, series.unsent, series.sending = series.unsent, 0, series.unsent
            if not occurrences:
                continue
            self._in_flight += 1
            try:
                problem = await self._deliver(series, occurrences)
            except Exception as error:  # one bad event must not stop the rest
                problem = ("refused", type(error).__name__)
            finally:
                series.sending = 0
                self._in_flight -= 1
            if problem is None:
                self.posted += occurrences
            else:
                self._lost(series, occurrences, *problem)
            if series.unsent and not series.queued:
                self._enqueue(key, series)
            if not self._ready and not self._in_flight:
                self._idle.set()

    async def _deliver(self, series: _Series, occurrences: int) -> tuple[str, str] | None:
        """Send `occurrences` more of `series`, retrying what may pass later; None once
        the apiserver took them, else the drop reason and why."""
        for delay in (*self._retry_delays, None):
            try:
                problem = await self._send(series, occurrences)
            except _Retry as retry:
                if delay is None:
                    return "unavailable", retry.problem
                await asyncio.sleep(delay)
                continue
            return None if problem is None else ("refused", problem)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, series: _Series, occurrences: int) -> str | None:
        """One POST (a new Event) or PATCH (a bump); None if the apiserver took it, the
        refusal if it never will; _Retry otherwise."""
        if series.name is not None:
            try:
                await self._request(series, "PATCH", self._bump(series, occurrences))
                series.posted += occurrences
                return None
            except _Gone:
                series.name, series.posted = None, 0
        body = {**series.body, "count": occurrences, "lastTimestamp": wall_time(series.last)}
        if occurrences > 1:
            body["series"] = {"count": occurrences, "lastObservedTime": micro_time(series.last)}
        reply = await self._request(series, "POST", body)
        if isinstance(reply, dict):
            series.name = str((reply.get("metadata") or {}).get("name") or "") or None
            series.posted = occurrences
        return None if isinstance(reply, dict) else reply

    def _bump(self, series: _Series, occurrences: int) -> dict[str, Any]:
        count = series.posted + occurrences
        return {
            "count": count,
            "lastTimestamp": wall_time(series.last),
            "series": {"count": count, "lastObservedTime": micro_time(series.last)},
        }

    async def _request(
        self, series: _Series, method: str, body: dict[str, Any]
    ) -> dict[str, Any] | str:
        """The created or patched Event, or the apiserver's refusal; _Retry, _Gone."""
        namespace = path_segment(series.body["metadata"]["namespace"])
        path = f"/api/v1/namespaces/{namespace}/events"
        content_type = "application/json"
        if method == "PATCH":
            path += f"/{path_segment(series.name or '')}"
            content_type = "application/merge-patch+json"
        try:
            session, server = await self._connection.current()
            async with session.request(
                method, server + path, data=orjson.dumps(body),
                headers={"Content-Type": content_type}, timeout=POST_TIMEOUT,
            ) as response:  # fmt: skip
                self.requests += 1
                if response.status < 400:
                    reply = decode(await response.read())
                    return reply if isinstance(reply, dict) else {}
                if method == "PATCH" and response.status == NOT_FOUND:
                    raise _Gone
                problem = f"HTTP {response.status}: {await status_message(response)}"
                if response.status == TOO_MANY_REQUESTS or response.status >= SERVER_ERROR:
                    raise _Retry(problem)
                return problem
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _Retry(type(error).__name__) from error

    def _drop(self, series: _Series, occurrences: int, reason: str, *, quiet: bool = False) -> None:
        if occurrences <= 0:
            return
        if self._count_dropped is not None:
            self._count_dropped(reason, occurrences)
        if reason in ("queue_full", "shutdown"):
            before, self.dropped = self.dropped, self.dropped + occurrences
            if not quiet and (before == 0 or before // LOG_EVERY != self.dropped // LOG_EVERY):
                log.warning(
                    "%d events dropped so far: the apiserver is not taking them as fast "
                    "as they come (queue of %d)", self.dropped, self._max_queued,
                )  # fmt: skip
            return
        self.failed += occurrences

    def _lost(self, series: _Series, occurrences: int, reason: str, problem: str) -> None:
        # Events are auxiliary: a lost one is counted and logged, the work goes on.
        before = self.failed
        self._drop(series, occurrences, reason)
        if before == 0 or before // LOG_EVERY != self.failed // LOG_EVERY:
            involved, body = series.body["involvedObject"], series.body
            log.warning(
                "could not post event %s %s about %s %s/%s: %s (%d events lost so far)",
                body["type"], body["reason"], involved["kind"], involved["namespace"],
                involved["name"], problem[:300], self.failed,
            )  # fmt: skip
