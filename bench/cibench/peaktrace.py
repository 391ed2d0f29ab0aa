"""Run the operator's CLI under tracemalloc and keep what Python held at its largest.

    CIBENCH_PEAK_OUT=/tmp/op python bench/cibench/peaktrace.py --shard ...
    # /tmp/op.peak.txt: the allocation sites at the largest traced total so far

A thread reads the traced total every half second; each time it passed the largest one
seen by more than `STEP_MB`, a snapshot (one frame per allocation: cheap enough at
10,000 services) is written out, so the file always holds the latest peak; SIGUSR2 (sent by
the bench at all Ready) stops it there. Used by
`bench/run.py --tracemalloc-peak` to find a transient that an end-of-run capture (memray's
high-water mark, `--profile`'s dump after convergence) cannot show. The RSS read beside each
snapshot tells Python's heap from the rest (allocator slack, native buffers).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import tracemalloc

STEP_MB = 4.0
TOP = 40


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _write(path: str, started: float) -> None:
    current, _ = tracemalloc.get_traced_memory()
    rss = _rss_mb()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )
    lines = [
        f"at {time.time() - started:.1f} s after start: traced {current / 2**20:.1f} MB, "
        f"RSS {rss:.1f} MB",
        "",
    ]
    for stat in snapshot.statistics("lineno")[:TOP]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size / 2**20:8.2f} MB {stat.count:9d} blocks  {frame.filename}:{frame.lineno}"
        )
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def _watch(path: str, started: float, frozen: threading.Event) -> None:
    largest = 0.0
    while not frozen.wait(0.5):
        current = tracemalloc.get_traced_memory()[0] / 2**20
        if current > largest + STEP_MB:
            largest = current
            _write(path, started)


def main() -> int:
    path = os.environ["CIBENCH_PEAK_OUT"] + ".peak.txt"
    started = time.time()
    frozen = threading.Event()
    signal.signal(signal.SIGUSR2, lambda signum, frame: frozen.set())
    tracemalloc.start(1)
    watcher = threading.Thread(target=_watch, args=(path, started, frozen), daemon=True)
    watcher.start()
    from cloudinfer.main import client_library  # noqa: PLC0415 - traced import

    client_library.keep_out()  # as the console script does (cloudinfer/main/entry.py)
    from cloudinfer.main.cli import main as operator_main  # noqa: PLC0415 - traced import

    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
