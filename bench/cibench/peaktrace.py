"""Run the operator's CLI under tracemalloc and keep what Python held at its largest.

    CIBENCH_PEAK_OUT=/tmp/op python bench/cibench/peaktrace.py --shard ...
    # /tmp/op.peak.txt: the allocation sites at the largest traced total so far

A thread reads the traced total every half second; each time it passed the largest one
seen by more than `STEP_MB`, a snapshot (one frame per allocation: cheap enough at
10,000 services) is written out, so the file always holds the latest peak; SIGUSR2 (sent by
the bench at all Ready) stops it there and writes what the peak held beyond what is held
then (`.transient.txt`). With CIBENCH_PEAK_MALLOCSTATS set there is no tracemalloc: each new
RSS peak writes pymalloc's statistics and the process's mappings instead. Used by
`bench/run.py --tracemalloc-peak` to find a transient that an end-of-run capture (memray's
high-water mark, `--profile`'s dump after convergence) cannot show. The RSS read beside each
snapshot tells Python's heap from the rest (allocator slack, native buffers).
"""

from __future__ import annotations

import ctypes
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


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )


def _site(stat: tracemalloc.Statistic | tracemalloc.StatisticDiff) -> str:
    frame = stat.traceback[0]
    return f"{frame.filename}:{frame.lineno}"


def _write(path: str, started: float) -> tracemalloc.Snapshot:
    current, peak = tracemalloc.get_traced_memory()
    rss = _rss_mb()
    snapshot = _snapshot()
    lines = [
        f"at {time.time() - started:.1f} s after start: traced {current / 2**20:.1f} MB "
        f"(highest so far {peak / 2**20:.1f} MB), RSS {rss:.1f} MB",
        "",
    ]
    lines += [
        f"{stat.size / 2**20:8.2f} MB {stat.count:9d} blocks  {_site(stat)}"
        for stat in snapshot.statistics("lineno")[:TOP]
    ]
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return snapshot


def _write_transient(path: str, peak: tracemalloc.Snapshot) -> None:
    """What the peak held beyond what is held now (at all Ready), by allocation site."""
    now = _snapshot()
    diffs = sorted(peak.compare_to(now, "lineno"), key=lambda d: d.size_diff, reverse=True)
    lines = [f"{d.size_diff / 2**20:8.2f} MB {d.count_diff:9d} blocks  {_site(d)}" for d in diffs]
    with open(path.replace(".peak.txt", ".transient.txt"), "w") as out:
        out.write("held at the peak and no longer at all Ready:\n\n")
        out.write("\n".join(lines[:TOP]) + "\n")


def _watch(path: str, started: float, frozen: threading.Event) -> None:
    largest = 0.0
    peak: tracemalloc.Snapshot | None = None
    while not frozen.wait(0.5):
        current = tracemalloc.get_traced_memory()[0] / 2**20
        if current > largest + STEP_MB:
            largest = current
            peak = _write(path, started)
    if peak is not None:
        _write_transient(path, peak)


def _watch_rss(path: str, started: float, frozen: threading.Event) -> None:
    """Without tracemalloc: at each new RSS peak, pymalloc's and glibc's own accounts of
    their arenas (used, free and lost bytes), the process's mappings and threads, to tell
    live objects from allocator slack. Both statistics print to fd 2, which points at the
    file meanwhile: an operator log line written in that instant lands there too."""
    largest = 0.0
    while not frozen.wait(0.5):
        rss = _rss_mb()
        if rss > largest + STEP_MB:
            largest = rss
            saved = os.dup(2)
            with open(path + ".tmp", "w") as out:
                out.write(f"at {time.time() - started:.1f} s after start: RSS {rss:.1f} MB\n")
                out.write(_mappings())
                out.write(_threads())
                out.flush()
                os.dup2(out.fileno(), 2)
                try:
                    sys._debugmallocstats()
                    _malloc_info(out.fileno())
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
            os.replace(path + ".tmp", path)


def _threads() -> str:
    names = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/comm") as comm:
            names.append(comm.read().strip())
    return f"threads: {', '.join(sorted(names))}\n"


def _malloc_info(fd: int) -> None:
    """glibc's own account of its arenas (XML), written to `fd`."""
    libc = ctypes.CDLL("libc.so.6")
    libc.fdopen.restype = ctypes.c_void_p
    stream = libc.fdopen(os.dup(fd), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))


def _mappings() -> str:
    """RSS of the brk heap, of anonymous mappings and of the rest, from /proc/self/smaps."""
    kinds: dict[str, int] = {}
    kind = ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and "-" in fields[0] and ":" not in fields[0]:
                name = fields[5] if len(fields) > 5 else ""
                kind = name if name in ("[heap]", "") else "files and others"
            elif fields and fields[0] == "Rss:":
                kinds[kind or "[anon]"] = kinds.get(kind or "[anon]", 0) + int(fields[1])
    return "".join(f"{v / 1024:8.1f} MB {k}\n" for k, v in sorted(kinds.items()))


def main() -> int:
    path = os.environ["CIBENCH_PEAK_OUT"] + ".peak.txt"
    started = time.time()
    frozen = threading.Event()
    signal.signal(signal.SIGUSR2, lambda signum, frame: frozen.set())
    if os.environ.get("CIBENCH_PEAK_MALLOCSTATS"):
        watch = _watch_rss
    else:
        tracemalloc.start(1)
        watch = _watch
    watcher = threading.Thread(target=watch, args=(path, started, frozen), daemon=True)
    watcher.start()
    from cloudinfer.main import client_library  # noqa: PLC0415 - traced import

    client_library.keep_out()  # as the console script does (cloudinfer/main/entry.py)
    from cloudinfer.main.cli import main as operator_main  # noqa: PLC0415 - traced import

    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
