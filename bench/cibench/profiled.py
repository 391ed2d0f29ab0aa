"""Run the operator's CLI under tracemalloc and cProfile; SIGUSR1 writes both reports.

    CIBENCH_PROFILE_OUT=/tmp/op python bench/cibench/profiled.py --standalone ...
    # kill -USR1 <pid>  ->  /tmp/op.memory.txt (allocation sites), /tmp/op.cpu.txt (pstats)

Used by `bench/run.py --profile` to explain the RSS and CPU figures. Profiling costs memory
and CPU itself, so the footprint of such a run is not the one to report. cProfile sees the
main thread (the asyncio loop, where Kopf and the reconcilers run), not worker threads.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
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


def _dump_cpu(profiler: cProfile.Profile, path: str) -> None:
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(45)
    profiler.enable()
    with open(path + ".tmp", "w") as out:
        out.write(text.getvalue())
    os.replace(path + ".tmp", path)


def main() -> int:
    prefix = os.environ["CIBENCH_PROFILE_OUT"]
    tracemalloc.start(FRAMES)
    profiler = cProfile.Profile()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _dump_cpu(profiler, prefix + ".cpu.txt")
        _dump(prefix + ".memory.txt")

    signal.signal(signal.SIGUSR1, on_signal)
    from cloudinfer.main import client_library  # noqa: PLC0415 - traced import

    client_library.keep_out()  # as the console script does (cloudinfer/main/entry.py)
    from cloudinfer.main.cli import main as operator_main  # noqa: PLC0415 - traced import

    profiler.enable()
    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
