"""Kopf's index gate alone (issue 19): CPU seconds for N per-object toggles in one
`ToggleSet(all)` with N waiters, each toggle turned on in turn, as Kopf does for an indexed
resource before any handler or daemon runs (kopf/_core/reactor/queueing.py).

    .venv/bin/python bench/bench_index_gate.py 250 500 1000 2000
"""

from __future__ import annotations

import asyncio
import sys
import time

from kopf._cogs.aiokits import aiotoggles


async def gate_seconds(n: int) -> float:
    gate = aiotoggles.ToggleSet(all)
    blocker = await gate.make_toggle(name="resource kind")
    toggles = [await gate.make_toggle(name=str(i)) for i in range(n)]
    waiters = [asyncio.create_task(gate.wait_for(True)) for _ in range(n)]
    await asyncio.sleep(0)
    started = time.process_time()
    await gate.drop_toggle(blocker)
    for toggle in toggles:
        await toggle.turn_to(True)
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    return time.process_time() - started


def main(argv: list[str]) -> int:
    for n in (int(a) for a in argv or ["250", "500", "1000", "2000"]):
        print(f"N={n}: {asyncio.run(gate_seconds(n)):.2f} CPU-s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
