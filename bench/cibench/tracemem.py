"""Run the operator's CLI under tracemalloc; SIGUSR1 writes where its memory was allocated.

    CIBENCH_TRACEMALLOC_OUT=/tmp/mem.txt python bench/cibench/tracemem.py --standalone ...

Used by `bench/run.py --trace-memory` to explain the RSS figure (tracemalloc itself costs
memory and CPU, so the footprint of such a run is not the one to report).
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType

FRAMES = 12


def _dump(path: str) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )
    by_file = snapshot.statistics("filename")
    total = sum(stat.size for stat in by_file)
    lines = [f"traced Python allocations: {total / 2**20:.1f} MB in {len(by_file)} files", ""]
    lines += [f"{stat.size / 2**20:8.2f} MB {stat.count:9d} blocks  {stat.traceback[0].filename}"
              for stat in by_file[:40]]  # fmt: skip
    lines += ["", "-- top allocation sites (traceback, innermost last)"]
    for stat in snapshot.statistics("traceback")[:25]:
        lines.append(f"\n{stat.size / 2**20:.2f} MB in {stat.count} blocks")
        lines += stat.traceback.format(limit=FRAMES)
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def main() -> int:
    path = os.environ["CIBENCH_TRACEMALLOC_OUT"]
    tracemalloc.start(FRAMES)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _dump(path)

    signal.signal(signal.SIGUSR1, on_signal)
    from cloudinfer.main.cli import main as operator_main  # noqa: PLC0415 - traced import

    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
