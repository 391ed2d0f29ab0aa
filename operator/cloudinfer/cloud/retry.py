"""Calling a cloud with retries that respect the rate budget.

Each attempt, first or retry, takes a token from the account's bucket, so retries never go
over the budget. Throttling shrinks the bucket before the retry waits. Only errors whose class
says `Retry.BACKOFF` are retried here; the rest go back to the caller (the reconciler requeues
`Retry.SLOW` errors and reports `Retry.NEVER` ones). A write that may have been carried out
without an answer (`CloudError.may_have_applied`) is not sent again here either: the
reconciler waits for an observation that shows whether it took effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from cloudinfer.cloud.backoff import Backoff
from cloudinfer.cloud.budget import TokenBucket
from cloudinfer.cloud.clock import Clock
from cloudinfer.cloud.errors import CloudError, Retry, ThrottledError

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS: Final = 4
"""One call plus three retries: with the default backoff that is at most 0.5+1+2 s of waiting
before the error is handed back to the reconciler, which has its own requeue delay."""


@dataclass
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = field(default_factory=Backoff)


async def call_with_budget(
    attempt: Callable[[], Awaitable[T]],
    *,
    bucket: TokenBucket,
    clock: Clock,
    policy: RetryPolicy,
    resend_unanswered: bool = True,
) -> T:
    """Run `attempt` within `bucket`'s budget, retrying errors that should be retried; with
    `resend_unanswered` False (writes), not one the cloud may have carried out."""
    retry = 0
    while True:
        await bucket.acquire()
        started = clock.monotonic()
        try:
            result = await attempt()
        except CloudError as error:
            bucket.record(clock.monotonic() - started, error)
            if isinstance(error, ThrottledError):
                bucket.on_throttled()
            if error.retry is not Retry.BACKOFF or retry + 1 >= policy.max_attempts:
                raise
            if error.may_have_applied and not resend_unanswered:
                raise
            await clock.sleep(policy.backoff.delay(retry, retry_after=error.retry_after))
            retry += 1
        else:
            bucket.record(clock.monotonic() - started, None)
            return result
