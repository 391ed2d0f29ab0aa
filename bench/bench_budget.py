"""The rate budget alone (issue 19): one `TokenBucket` on the real event loop and clock, a
backlog of callers, and a fake cloud that only records when each call got its token.

    PYTHONPATH=operator .venv/bin/python bench/bench_budget.py --calls 600 --stall 0.17

`--stall S` blocks the event loop for S seconds once every `--every` seconds (at a random
phase), as the operator's list decoding does at N = 1,000; `--turn-ms M` makes every turn of
the loop take M ms more (a busy loop: ~10 ms a turn in the N = 1,000 bench at load 5).
Prints the stream's rate against the limit, the most calls in any one second (half-open, as
tests/reliability/invariants.py counts), the mean time from call k to call k + limit, and
how many calls the simulator's token bucket (one second of tokens, refilled continuously:
cloudsim/ratelimit.py) would have throttled had every call reached it `--jitter` seconds late
at most (uniform, seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import time

from cloudinfer.cloud.budget import CallRate, TokenBucket
from cloudinfer.cloud.clock import SystemClock


def max_in_any_second(times: list[float]) -> int:
    ordered, best, start = sorted(times), 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def simulator_throttles(arrivals: list[float], limit: float) -> int:
    """Calls cloudsim's RateLimiter would refuse: a bucket of `limit` tokens, full at first."""
    tokens, stamp, refused = limit, None, 0
    for t in sorted(arrivals):
        if stamp is not None:
            tokens = min(limit, tokens + (t - stamp) * limit)
        stamp = t
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            refused += 1
    return refused


async def drive(
    calls: int, limit: float, *, stall: float, every: float, turn: float, rng: random.Random
) -> list[float]:
    bucket = TokenBucket(CallRate(limit), SystemClock())
    stamps: list[float] = []

    async def call() -> None:
        await bucket.acquire()
        stamps.append(time.monotonic())

    async def blocker() -> None:
        while len(stamps) < calls:
            await asyncio.sleep(every * rng.uniform(0.5, 1.5))
            if stall > 0:
                time.sleep(stall)  # noqa: ASYNC251 (blocks the loop on purpose, like a CPU-bound step)

    async def busy() -> None:
        while turn > 0:
            time.sleep(turn)  # noqa: ASYNC251 (every turn of the loop takes this long)
            await asyncio.sleep(0)

    callers = asyncio.gather(*(call() for _ in range(calls)))
    others = [asyncio.ensure_future(blocker()), asyncio.ensure_future(busy())]
    await callers
    for task in others:
        task.cancel()
    return stamps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--limit", type=float, default=20.0)
    parser.add_argument("--stall", type=float, default=0.0, help="seconds the loop is blocked")
    parser.add_argument("--every", type=float, default=1.0, help="mean seconds between stalls")
    parser.add_argument("--turn-ms", type=float, default=0.0, help="ms added to every turn")
    parser.add_argument("--jitter", type=float, default=0.0, help="delivery delay spread (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)  # noqa: S311 (reproducible phases, not cryptography)
    stamps = asyncio.run(
        drive(
            args.calls,
            args.limit,
            stall=args.stall,
            every=args.every,
            turn=args.turn_ms / 1000,
            rng=rng,
        )
    )
    span = stamps[-1] - stamps[0]
    k = math.ceil(args.limit)
    chain = [b - a for a, b in zip(stamps, stamps[k:], strict=False)]
    arrivals = [t + rng.uniform(0, args.jitter) for t in stamps]
    print(
        f"calls {len(stamps)} in {span:.2f} s: {(len(stamps) - 1) / span:.2f}/s "
        f"({(len(stamps) - 1) / span / args.limit:.1%} of {args.limit:g}/s); "
        f"most in any 1 s {max_in_any_second(stamps)}; "
        f"call k to k+{k}: mean {statistics.mean(chain):.3f} s, min {min(chain):.3f} s; "
        f"simulator throttles with jitter {args.jitter:g} s: "
        f"{simulator_throttles(arrivals, args.limit)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
