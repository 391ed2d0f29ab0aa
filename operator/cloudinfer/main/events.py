"""Kubernetes Events, posted by the operator itself, one at a time, in the order they happen.

Kopf's poster writes `eventTime` with `isoformat()`, which drops the fraction when the
microseconds are 0, and the apiserver refuses such a MicroTime ("cannot parse +00:00 as
.000000"). That is one event in a million, and it happened: one of 3,061 `CloudWrite` events
of a benchmark run was lost (bench/README.md). Here every timestamp has its API type's format.

A single task posts from a bounded queue, so a burst of events (one per cloud write, 20 a
second per account) holds one apiserver connection, not one each. A post the apiserver could
not take now (no connection, a timeout, 429, 5xx) is retried with backoff, as Kopf did, while
newer events wait behind it; when the queue is full the oldest waiting event is dropped (and
counted in the log) rather than memory growing. A refusal (400, 403, 422) is not retried. At
shutdown what is queued gets a few seconds to go out.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp

from cloudinfer.main.apiserver import CONNECTION, ApiserverConnection, path_segment, status_message

COMPONENT: Final = "cloudinfer-operator"
MAX_QUEUED: Final = 1000
MAX_MESSAGE_BYTES: Final = 1024
"""The apiserver refuses an event message over 1,024 bytes (UTF-8: cloud errors in Chinese
reach that at ~340 characters)."""
POST_TIMEOUT: Final = aiohttp.ClientTimeout(total=10, sock_connect=5)
RETRY_DELAYS: Final = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds between attempts of one post (31 s in all, about Kopf's 54 s)."""
TOO_MANY_REQUESTS: Final = 429
SERVER_ERROR: Final = 500
LOG_EVERY: Final = 100
"""After the first, one warning per this many dropped or lost events."""

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
    """The apiserver could not take the post now; `problem` says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class EventPoster:
    """Posts Events in order from one task; `post` never blocks and never raises."""

    def __init__(
        self, connection: ApiserverConnection = CONNECTION, *, max_queued: int = MAX_QUEUED,
        instance: str | None = None, retry_delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:  # fmt: skip
        self._connection = connection
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queued)
        self._task: asyncio.Task[None] | None = None
        self._instance = instance or socket.gethostname()[:128]
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self.dropped = 0
        """Events pushed out of a full queue."""
        self.failed = 0
        """Events refused, or not taken after every retry."""
        self.posted = 0

    def post(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        body = event_body(
            involved, type_, reason, message, when=self._clock(), instance=self._instance
        )
        if not body["metadata"]["namespace"]:
            log.debug("no %s event: %s is not namespaced", reason, involved.get("kind"))
            return
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % LOG_EVERY == 0:
                log.warning(
                    "%d events dropped so far: the apiserver is not taking them as fast "
                    "as they come (queue of %d)", self.dropped, self._queue.maxsize,
                )  # fmt: skip
        self._queue.put_nowait(body)
        if self._task is None or self._task.done():
            # A context of its own: not the first poster's Kopf context, for the process's life.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="events", context=contextvars.Context()
            )

    async def flush(self, seconds: float) -> None:
        """Wait up to `seconds` for the queue to empty, then stop posting."""
        try:
            async with asyncio.timeout(seconds):
                await self._queue.join()
        except TimeoutError:
            log.warning("%d events not posted at shutdown", self._queue.qsize())
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                problem = await self._deliver(body)
            except Exception as error:  # one bad event must not stop the rest
                problem = type(error).__name__
            finally:
                self._queue.task_done()
            if problem is not None:
                self._lost(body, problem)

    async def _deliver(self, body: dict[str, Any]) -> str | None:
        """Post `body`, retrying what may pass later; None once posted, else why not."""
        for delay in (*self._retry_delays, None):
            try:
                problem = await self._send(body)
            except _Retry as retry:
                if delay is None:
                    return retry.problem
                await asyncio.sleep(delay)
                continue
            if problem is None:
                self.posted += 1
            return problem
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, body: dict[str, Any]) -> str | None:
        """None if the apiserver took it, the refusal if it never will; _Retry otherwise."""
        path = f"/api/v1/namespaces/{path_segment(body['metadata']['namespace'])}/events"
        try:
            session, server = await self._connection.current()
            async with session.post(server + path, json=body, timeout=POST_TIMEOUT) as response:
                if response.status < 400:
                    return None
                problem = f"HTTP {response.status}: {await status_message(response)}"
                if response.status == TOO_MANY_REQUESTS or response.status >= SERVER_ERROR:
                    raise _Retry(problem)
                return problem
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _Retry(type(error).__name__) from error

    def _lost(self, body: dict[str, Any], problem: str) -> None:
        # Events are auxiliary: a lost one is logged, the work goes on.
        self.failed += 1
        if self.failed == 1 or self.failed % LOG_EVERY == 0:
            involved = body["involvedObject"]
            log.warning(
                "could not post event %s %s about %s %s/%s: %s (%d events lost so far)",
                body["type"], body["reason"], involved["kind"], involved["namespace"],
                involved["name"], problem[:300], self.failed,
            )  # fmt: skip
