"""Kubernetes Events, posted by the operator itself, one at a time, in the order they happen.

Kopf's poster writes `eventTime` with `isoformat()`, which drops the fraction when the
microseconds are 0, and the apiserver refuses such a MicroTime ("cannot parse +00:00 as
.000000"): one `CloudWrite` event in ~3,000 was lost that way (bench/README.md). Here every
timestamp is formatted as its API type requires.

A single task posts from a bounded queue, so a burst of events (one per cloud write, 20 a
second per account) holds one apiserver connection, not one each. When the apiserver is down
the queue fills, and the oldest event is dropped (and counted in the log) rather than the
operator's memory growing. At shutdown what is queued gets a few seconds to go out.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from cloudinfer.main.apiserver import CONNECTION, ApiserverConnection, status_message

COMPONENT: Final = "cloudinfer-operator"
MAX_QUEUED: Final = 1000
MAX_MESSAGE: Final = 1024
"""Characters of an event's message (the apiserver refuses more than 1 KiB as `note`)."""
POST_TIMEOUT: Final = aiohttp.ClientTimeout(total=10, sock_connect=5)

log = logging.getLogger(__name__)


def micro_time(when: datetime.datetime) -> str:
    """`metav1.MicroTime`: RFC 3339 with exactly six fractional digits, in UTC."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wall_time(when: datetime.datetime) -> str:
    """`metav1.Time`: RFC 3339 to the second, in UTC."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, *,
    when: datetime.datetime, instance: str,
) -> dict[str, Any]:  # fmt: skip
    """A core/v1 Event about the object whose body is `involved`."""
    meta = involved.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
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
        "message": message,
        "action": reason,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": wall_time(when),
        "lastTimestamp": wall_time(when),
        "eventTime": micro_time(when),
        "count": 1,
    }


class EventPoster:
    """Posts Events in order from one task; `post` never blocks and never raises."""

    def __init__(
        self, connection: ApiserverConnection = CONNECTION, *, max_queued: int = MAX_QUEUED,
        instance: str | None = None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:  # fmt: skip
        self._connection = connection
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queued)
        self._task: asyncio.Task[None] | None = None
        self._instance = instance or socket.gethostname()[:128]
        self._clock = clock
        self.dropped = 0
        self.failed = 0
        self.posted = 0

    def post(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        body = event_body(
            involved, type_, reason, message, when=self._clock(), instance=self._instance
        )
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "%d events dropped so far: the apiserver is not taking them as fast "
                    "as they come (queue of %d)", self.dropped, self._queue.maxsize,
                )  # fmt: skip
        self._queue.put_nowait(body)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

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
                await self._send(body)
            except Exception as error:  # one bad event must not stop the rest
                self.failed += 1
                log.warning("could not post event %s: %s", body.get("reason"), type(error).__name__)
            finally:
                self._queue.task_done()

    async def _send(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/events"
        try:
            session, server = await self._connection.current()
            async with session.post(server + path, json=body, timeout=POST_TIMEOUT) as response:
                if response.status < 400:
                    self.posted += 1
                    return
                problem = f"HTTP {response.status}: {await status_message(response)}"
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = type(error).__name__
        # Events are auxiliary: a lost one is logged, the work goes on.
        self.failed += 1
        involved = body["involvedObject"]
        log.warning(
            "could not post event %s %s about %s %s/%s: %s", body["type"], body["reason"],
            involved["kind"], namespace, involved["name"], problem[:300],
        )  # fmt: skip
