"""Rate budgets, backoff and retries on a virtual clock."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import deque

import pytest
from virtual_clock import VirtualClock

from cloudinfer.cloud.backoff import BACKOFF_CAP_SECONDS, Backoff
from cloudinfer.cloud.budget import (
    AIMD_DECREASE_FACTOR,
    RECOVERY_DELAY_SECONDS,
    CallRate,
    RateBudgets,
    TokenBucket,
)
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    CloudError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from cloudinfer.cloud.retry import RetryPolicy, call_with_budget
from cloudinfer.cloud.tencent.limits import (
    DESCRIBE_MODEL_SERVICE,
    MODIFY_MODEL_SERVICE,
    TENCENT_DEFAULT_RATE_LIMIT,
    TENCENT_RATE_LIMITS,
)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (reproducible jitter, not cryptography)


def max_in_any_second(times: list[float]) -> int:
    """The most events in any half-open window [t, t + 1s)."""
    ordered = sorted(times)
    best = 0
    window: deque[float] = deque()
    for t in ordered:
        window.append(t)
        while window[0] <= t - 1.0 + 1e-9:
            window.popleft()
        best = max(best, len(window))
    return best


class Admissions(list[float]):
    """When each waiter got its token; `waiter()` makes one more waiter."""

    def __init__(self, clock: VirtualClock, bucket: TokenBucket) -> None:
        super().__init__()
        self.clock, self.bucket = clock, bucket

    async def waiter(self) -> None:
        await self.bucket.acquire()
        self.append(self.clock.monotonic())


def burst(clock: VirtualClock, bucket: TokenBucket, n: int) -> list[float]:
    """`n` concurrent callers each take one token; returns when each got it."""
    admitted = Admissions(clock, bucket)
    one = admitted.waiter

    async def all_of_them() -> None:
        await asyncio.gather(*(one() for _ in range(n)))

    clock.run(all_of_them())
    return admitted


@pytest.mark.parametrize(
    "limit",
    [CallRate(20), CallRate(50), CallRate(3.5), CallRate(20, burst=1)],
    ids=["ti-one-modify-20", "ti-one-describe-50", "fractional-3.5", "explicit-burst-1"],
)
def test_burst_of_1000_never_exceeds_the_budget_in_any_second(
    virtual_clock: VirtualClock, limit: CallRate
) -> None:
    bucket = TokenBucket(limit, virtual_clock)
    start = virtual_clock.monotonic()
    admitted = burst(virtual_clock, bucket, 1000)
    assert len(admitted) == 1000
    # Paced calls: a window of one second holds at most ceil(rate) of them.
    assert max_in_any_second(admitted) <= math.ceil(limit.per_second)
    # ...and the budget is used, not wasted: 1000 calls take about 1000/rate seconds.
    assert max(admitted) - start == pytest.approx(999 / limit.per_second, rel=0.01)


def test_burst_allowance_is_bounded(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(10, burst=5), virtual_clock)
    admitted = burst(virtual_clock, bucket, 200)
    assert max_in_any_second(admitted) <= 10 + 5 - 1


def test_500_writes_against_a_20_per_second_cloud_are_never_throttled(
    virtual_clock: VirtualClock,
) -> None:
    """A fake cloud that throttles above 20 calls in any second sees zero excess calls."""
    budgets = RateBudgets(
        TENCENT_RATE_LIMITS, default=TENCENT_DEFAULT_RATE_LIMIT, clock=virtual_clock
    )
    seen: list[float] = []
    throttled = 0

    async def modify() -> None:
        nonlocal throttled
        seen.append(virtual_clock.monotonic())
        if max_in_any_second([t for t in seen if t > seen[-1] - 1.0]) > 20:
            throttled += 1
            raise ThrottledError("RequestLimitExceeded", cloud="tencent")

    async def writes() -> None:
        bucket = budgets.bucket("acct", MODIFY_MODEL_SERVICE)
        policy = RetryPolicy()
        await asyncio.gather(
            *(
                call_with_budget(modify, bucket=bucket, clock=virtual_clock, policy=policy)
                for _ in range(500)
            )
        )

    virtual_clock.run(writes())
    assert throttled == 0
    assert len(seen) == 500


def test_throttling_halves_the_rate_and_repaces_waiters(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(20), virtual_clock)
    admitted = Admissions(virtual_clock, bucket)
    one = admitted.waiter

    async def scenario() -> float:
        tasks = [asyncio.ensure_future(one()) for _ in range(300)]
        await virtual_clock.sleep(2.0)
        bucket.on_throttled()
        throttled_at = virtual_clock.monotonic()
        await asyncio.gather(*tasks)
        return throttled_at

    throttled_at = virtual_clock.run(scenario())
    # Until recovery starts, the halved rate holds; after it, the rate creeps back up.
    halved = [t for t in admitted if throttled_at <= t < throttled_at + RECOVERY_DELAY_SECONDS]
    assert len(halved) >= 99, "the burst should outlast the recovery delay"
    assert max_in_any_second(halved) <= 20 * AIMD_DECREASE_FACTOR
    assert max_in_any_second(admitted) <= 20
    assert len(admitted) == 300


def test_throttles_within_the_cooldown_shrink_once(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(20), virtual_clock)
    for _ in range(5):  # replies to calls that were already in flight
        bucket.on_throttled()
    assert bucket.rate == pytest.approx(10)
    virtual_clock.advance(1.5)
    bucket.on_throttled()
    assert bucket.rate == pytest.approx(5)


def test_rate_recovers_slowly_and_never_past_the_limit(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(20), virtual_clock)
    bucket.on_throttled()
    virtual_clock.advance(RECOVERY_DELAY_SECONDS)
    assert bucket.rate == pytest.approx(10), "no recovery during the delay"
    virtual_clock.advance(5)
    assert bucket.rate == pytest.approx(12), "2% of the limit per second"
    virtual_clock.advance(60)
    assert bucket.rate == pytest.approx(20)


def test_rate_never_shrinks_below_the_floor(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(20), virtual_clock)
    for _ in range(20):
        bucket.on_throttled()
        virtual_clock.advance(1.1)
    assert bucket.rate == pytest.approx(1.0)  # 5% of 20/s


def test_budget_is_per_account_and_action_class(virtual_clock: VirtualClock) -> None:
    budgets = RateBudgets(
        TENCENT_RATE_LIMITS, default=TENCENT_DEFAULT_RATE_LIMIT, clock=virtual_clock
    )
    shared = budgets.bucket("acct-a", MODIFY_MODEL_SERVICE)
    assert budgets.bucket("acct-a", MODIFY_MODEL_SERVICE) is shared
    assert budgets.bucket("acct-b", MODIFY_MODEL_SERVICE) is not shared
    assert budgets.bucket("acct-a", DESCRIBE_MODEL_SERVICE) is not shared
    assert budgets.bucket("acct-a", DESCRIBE_MODEL_SERVICE).limit == CallRate(50)
    assert budgets.bucket("acct-a", "SomeUndocumentedApi").limit == CallRate(20)


def test_account_overrides_apply_to_existing_buckets(virtual_clock: VirtualClock) -> None:
    budgets = RateBudgets(
        TENCENT_RATE_LIMITS, default=TENCENT_DEFAULT_RATE_LIMIT, clock=virtual_clock
    )
    bucket = budgets.bucket("acct", MODIFY_MODEL_SERVICE)
    budgets.configure("acct", {MODIFY_MODEL_SERVICE: CallRate(5)})
    assert bucket.limit == CallRate(5)
    assert budgets.bucket("other", MODIFY_MODEL_SERVICE).limit == CallRate(20)
    admitted = burst(virtual_clock, bucket, 50)
    assert max_in_any_second(admitted) <= 5


@pytest.mark.parametrize(
    "bad", [(0, 1), (-1, 1), (1, 0)], ids=["zero-rate", "negative-rate", "zero-burst"]
)
def test_rate_limit_rejects_nonsense(bad: tuple[float, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CallRate(bad[0], burst=bad[1])


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_and_is_capped() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=BACKOFF_CAP_SECONDS)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_backoff_is_jittered_within_the_ceiling_and_reproducible() -> None:
    first = Backoff(rng=seeded(7))
    second = Backoff(rng=seeded(7))
    delays = [first.delay(n % 6) for n in range(500)]
    assert delays == [second.delay(n % 6) for n in range(500)]
    assert all(0 <= d <= first.ceiling(n % 6) for n, d in enumerate(delays))
    assert len(set(delays)) > 450, "jitter should spread the retries"


def test_backoff_honours_retry_after_up_to_a_cap() -> None:
    backoff = Backoff(rng=seeded(1))
    assert backoff.delay(0, retry_after=12) == 12
    assert backoff.delay(0, retry_after=10_000) == 300


# --- retries within the budget -------------------------------------------------------------------


ONE_PER_SECOND = CallRate(1)


def _run_calls(
    clock: VirtualClock, failures: list[CloudError], limit: CallRate = ONE_PER_SECOND
) -> tuple[list[float], TokenBucket, BaseException | None]:
    bucket = TokenBucket(limit, clock)
    attempts: list[float] = []
    queue = list(failures)

    async def attempt() -> str:
        attempts.append(clock.monotonic())
        if queue:
            raise queue.pop(0)
        return "ok"

    policy = RetryPolicy(
        max_attempts=4,
        backoff=Backoff(
            base=0.0001,
            rng=seeded(0),
        ),
    )

    async def main() -> BaseException | None:
        try:
            await call_with_budget(attempt, bucket=bucket, clock=clock, policy=policy)
        except CloudError as error:
            return error
        return None

    return attempts, bucket, clock.run(main())


@pytest.mark.parametrize(
    ("failures", "attempts", "raised"),
    [
        ([], 1, None),
        ([TransientError("x", cloud="c")], 2, None),
        ([BusyError("x", cloud="c")] * 2, 3, None),
        ([TransientError("x", cloud="c")] * 4, 4, TransientError),
        ([AuthError("x", cloud="c")], 1, AuthError),
        ([QuotaError("x", cloud="c")], 1, QuotaError),
    ],
    ids=[
        "success",
        "transient-then-success",
        "busy-twice-then-success",
        "gives-up-after-max-attempts",
        "auth-is-not-retried",
        "quota-goes-back-to-the-reconciler",
    ],
)
def test_retry_policy_follows_the_error_class(
    virtual_clock: VirtualClock,
    failures: list[CloudError],
    attempts: int,
    raised: type[CloudError] | None,
) -> None:
    seen, _, error = _run_calls(virtual_clock, failures)
    assert len(seen) == attempts
    assert (type(error) if error else None) is raised


def test_retries_take_tokens_too(virtual_clock: VirtualClock) -> None:
    """Even with a near-zero backoff, retries are spaced by the 1/s budget."""
    seen, _, _ = _run_calls(virtual_clock, [TransientError("x", cloud="c")] * 3)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(gap >= 1.0 - 1e-9 for gap in gaps)


def test_throttling_shrinks_the_bucket_before_retrying(virtual_clock: VirtualClock) -> None:
    _, bucket, error = _run_calls(
        virtual_clock, [ThrottledError("x", cloud="c")], limit=CallRate(20)
    )
    assert error is None
    assert bucket.rate == pytest.approx(10)


def test_re_setting_the_same_limit_does_not_starve_waiters() -> None:
    """The operator re-reads its CloudAccount every poll; ten waiters at 2/s must still be
    served in about five seconds, however often the unchanged limit is set again."""
    clock = VirtualClock()
    bucket = TokenBucket(CallRate(2), clock)
    start = clock.monotonic()
    done: list[float] = []

    async def waiter() -> None:
        await bucket.acquire()
        done.append(clock.monotonic() - start)

    async def reconfigure() -> None:
        for _ in range(100):  # bounded: a starving bucket fails the assert, not the run
            if len(done) == 10:
                return
            bucket.set_limit(CallRate(2))
            await clock.sleep(0.3)

    async def main() -> None:
        await asyncio.gather(*(waiter() for _ in range(10)), reconfigure())

    asyncio.run(clock.drive(main()))
    assert len(done) == 10
    assert max(done) <= 5.0


def test_a_stalled_event_loop_never_releases_a_burst(virtual_clock: VirtualClock) -> None:
    """While the loop is blocked (time jumps without waking anyone), slots pass unused; when it
    comes back, calls resume one interval apart instead of all the overdue ones at once."""
    bucket = TokenBucket(CallRate(20), virtual_clock)
    admitted = Admissions(virtual_clock, bucket)
    one = admitted.waiter

    async def stalls() -> None:
        for _ in range(3):
            await virtual_clock.sleep(1.0)
            virtual_clock.advance(0.6)  # a blocking call in some handler

    async def scenario() -> None:
        await asyncio.gather(stalls(), *(one() for _ in range(120)))

    virtual_clock.run(scenario())
    assert len(admitted) == 120
    gaps = [b - a for a, b in itertools.pairwise(admitted)]
    assert min(gaps) >= 1 / 20 - 1e-9
    assert max_in_any_second(admitted) <= 20


def test_recovery_after_a_throttle_speeds_up_the_whole_backlog(
    virtual_clock: VirtualClock,
) -> None:
    """One throttle must not hold a long backlog at half rate: once the rate has recovered,
    waiters that were queued before the throttle are served at the recovered rate."""
    bucket = TokenBucket(CallRate(20), virtual_clock)
    admitted = Admissions(virtual_clock, bucket)
    one = admitted.waiter

    async def scenario() -> float:
        tasks = [asyncio.ensure_future(one()) for _ in range(1000)]
        await virtual_clock.sleep(2.0)
        bucket.on_throttled()
        throttled_at = virtual_clock.monotonic()
        await asyncio.gather(*tasks)
        return throttled_at

    throttled_at = virtual_clock.run(scenario())
    recovered = throttled_at + RECOVERY_DELAY_SECONDS + 25  # 2 %/s from half to full
    late = [t for t in admitted if recovered + 1 <= t < recovered + 6]
    assert len(late) >= 95, f"{len(late)} calls in 5 s after recovery, the limit allows 100"
    assert max_in_any_second(admitted) <= 20


def test_slightly_late_wake_ups_do_not_lower_the_rate(virtual_clock: VirtualClock) -> None:
    """A busy loop wakes every waiter a little late; the lateness is made up, so 400 calls at
    20/s still take about 20 s (26 s if it were not), and no second holds more than 20."""
    bucket = TokenBucket(CallRate(20), virtual_clock)
    admitted = Admissions(virtual_clock, bucket)
    one = admitted.waiter
    start = virtual_clock.monotonic()

    async def jitter() -> None:
        while len(admitted) < 400:
            await virtual_clock.sleep(0.013)
            virtual_clock.advance(0.03)  # every wake-up in this span comes late

    async def scenario() -> None:
        await asyncio.gather(jitter(), *(one() for _ in range(400)))

    virtual_clock.run(scenario())
    assert max(admitted) - start == pytest.approx(399 / 20, rel=0.02)
    assert max_in_any_second(admitted) <= 20


@pytest.mark.parametrize(
    ("stall", "at_once_range"), [(0.2, (2, 5)), (0.6, (1, 1))], ids=["short", "long"]
)
def test_a_short_stall_is_made_up_a_long_one_is_not(
    virtual_clock: VirtualClock, stall: float, at_once_range: tuple[int, int]
) -> None:
    """Up to CATCH_UP_SECONDS late, the missed slots go at once (at most 0.2 s x 20/s + 1);
    after a longer stall they are lost, and calls stay one interval apart."""
    bucket = TokenBucket(CallRate(20), virtual_clock)
    admitted = Admissions(virtual_clock, bucket)
    one = admitted.waiter

    async def stalls() -> None:
        await virtual_clock.sleep(1.0)
        virtual_clock.advance(stall)

    async def scenario() -> None:
        await asyncio.gather(stalls(), *(one() for _ in range(60)))

    virtual_clock.run(scenario())
    at_once = max(admitted.count(t) for t in admitted)
    assert at_once_range[0] <= at_once <= at_once_range[1]
    assert max_in_any_second(admitted) <= 20, "catching up never overfills a second"
    lost = max(admitted) - admitted[0] - 59 / 20
    assert lost == pytest.approx(0 if stall < 0.25 else stall, abs=0.06)


# -- what the metrics read ---------------------------------------------------------------------


def test_stats_count_calls_and_waits_and_read_without_changing_the_bucket(
    virtual_clock: VirtualClock,
) -> None:
    bucket = TokenBucket(CallRate(10), virtual_clock)
    burst(virtual_clock, bucket, 11)  # the 11th waits a second in all, the others less
    stats = bucket.stats()
    assert stats.calls == 11
    assert stats.waited_seconds == pytest.approx(sum(i / 10 for i in range(11)), abs=1e-6)
    bucket.on_throttled()
    shrunk = bucket.stats()
    assert shrunk.limit_per_second == 10
    assert shrunk.rate_per_second == pytest.approx(10 * AIMD_DECREASE_FACTOR)
    virtual_clock.advance(RECOVERY_DELAY_SECONDS + 5)
    recovered = bucket.stats()
    assert shrunk.rate_per_second < recovered.rate_per_second <= 10
    assert bucket.stats() == recovered, "reading stats twice gives the same answer"


def test_every_attempt_is_recorded_with_its_action_duration_and_error(
    virtual_clock: VirtualClock,
) -> None:
    budgets = RateBudgets({}, default=CallRate(100), clock=virtual_clock)
    recorded: list[tuple[str, float, str | None]] = []
    budgets.record_calls_with(
        lambda action, seconds, error: recorded.append(
            (action, seconds, error.reason if error else None)
        )
    )
    outcomes: deque[Exception | None] = deque([ThrottledError("slow down", cloud="tencent"), None])

    async def attempt() -> str:
        await virtual_clock.sleep(0.25)
        error = outcomes.popleft()
        if error is not None:
            raise error
        return "ok"

    bucket = budgets.bucket("ns/a", "DescribeModelServices")
    policy = RetryPolicy(backoff=Backoff(rng=seeded(1)))
    result = virtual_clock.run(
        call_with_budget(attempt, bucket=bucket, clock=virtual_clock, policy=policy)
    )
    assert result == "ok"
    assert recorded == [
        ("DescribeModelServices", pytest.approx(0.25), "CloudThrottled"),
        ("DescribeModelServices", pytest.approx(0.25), None),
    ]
    assert bucket.stats().calls == 2
    assert [(a, b.stats().calls) for _, a, b in budgets.buckets()] == [("DescribeModelServices", 2)]


def test_waiting_counts_the_callers_queued_for_a_token(virtual_clock: VirtualClock) -> None:
    bucket = TokenBucket(CallRate(1), virtual_clock)
    seen: list[int] = []

    async def scenario() -> None:
        callers = [asyncio.ensure_future(bucket.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        seen.append(bucket.waiting)  # the first has its token, two wait
        await asyncio.gather(*callers)
        seen.append(bucket.waiting)

    virtual_clock.run(scenario())
    assert seen == [2, 0]
