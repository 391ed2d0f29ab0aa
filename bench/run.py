"""Operator benchmarks (issue 9): convergence at the rate-limit floor, API budget, latency,
drift and footprint, against a real control plane and the TI-ONE simulator on loopback.

    CLOUDINFER_K8S_BIN=$(hack/build-k8s.sh) .venv/bin/python bench/run.py --config quick

Writes bench/results/<date>-<config>.{json,md,png} and prints the table. bench/README.md
explains each scenario and how to read the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cibench import report
from cibench.clouds import SHAPES, CloudBench
from cibench.env import SimProcess, world
from cibench.scenarios import CONFIGS, SCENARIOS, Config, SizeBench
from cibench.sharding import ShardBench, compare

RESULTS = Path(__file__).resolve().parent / "results"


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_size(bench: SizeBench) -> dict[str, Any]:
    n = bench.n
    bench.setup()
    _say(f"N={n}: {n} services seeded and {n} InferenceServices created "
         f"in {bench.result['setup_seconds']} s")  # fmt: skip
    scenarios = bench.config.scenarios
    try:
        c = bench.converge()
        _say(f"N={n}: all Ready in {c['seconds_to_all_ready']} s (floor {c['floor_seconds']} s, "
             f"ratio {c['ratio_to_floor']}), writes {c['writes_made_total']}/"
             f"{c['writes_needed_total']}, throttled {c['throttled_total']}")  # fmt: skip
        if "steady" in scenarios:
            s = bench.steady()
            _say(f"N={n}: steady {s['reads_per_poll']} reads/poll over {s['polls']} polls "
                 f"(baseline {s['baseline_reads_per_poll']}), kube writes/min "
                 f"{s['kube_writes_per_minute']}")  # fmt: skip
        if "edits" in scenarios:
            e = bench.edits()
            _say(f"N={n}: {e['count']} edits, p50 {e['p50']} s, p99 {e['p99']} s "
                 f"(timeouts {e['timeouts']})")  # fmt: skip
        if "drift" in scenarios:
            d = bench.drift()
            detect, correct = d["detect"], d["correct"]
            _say(f"N={n}: drift detect p50/p99 {detect['p50']}/{detect['p99']} s, correct "
                 f"{correct['p50']}/{correct['p99']} s (missed {d['missed']})")  # fmt: skip
        if "footprint" in scenarios:
            f = bench.footprint()
            _say(f"N={n}: RSS {f['rss_mb']} MB (peak {f['peak_rss_mb']} MB), "
                 f"CPU {f['cpu_seconds_total']} s")  # fmt: skip
        if "boundary" in scenarios:
            b = bench.boundary()
            _say(f"N={n}: one window boundary: last STOP {b['last_stop_seconds']} s after "
                 f"it (floor {b['floor_seconds']} s), all ScheduledStop "
                 f"{b['all_scheduled_stop_seconds']} s, "
                 f"throttled {b['throttled_total']}")  # fmt: skip
    finally:
        bench.stop()
    return bench.result


def run_cloud(bench: CloudBench) -> dict[str, Any]:
    n, title = bench.n, bench.shape.title
    bench.setup()
    _say(f"{title} N={n}: set up in {bench.result['setup_seconds']} s")
    try:
        c = bench.converge()
        _say(f"{title} N={n}: all Ready in {c['seconds_to_all_ready']} s (floor "
             f"{c['floor_seconds']} s, ratio {c['ratio_to_floor']}), writes "
             f"{c['writes_made_total']}/{c['writes_needed_total']}, throttled "
             f"{c['throttled_total']}")  # fmt: skip
        s = bench.steady()
        _say(f"{title} N={n}: steady {s['reads_per_poll']} reads/poll over {s['polls']} polls "
             f"(baseline {s['baseline_reads_per_poll']}), kube writes/min "
             f"{s['kube_writes_per_minute']}")  # fmt: skip
        d = bench.drift()
        _say(f"{title} N={n}: drift detect p50/p99 {d['detect']['p50']}/{d['detect']['p99']} s "
             f"(missed {d['missed']})")  # fmt: skip
        bench.footprint()
    finally:
        bench.stop()
    return bench.result


def _by_replica(values: dict[str, Any], digits: int = 1) -> str:
    """{identity: value} as "r0 1.0, r1 2.0" (identities are r<i>-<pid>)."""
    return ", ".join(f"{k.partition('-')[0]} {v:.{digits}f}" for k, v in sorted(values.items()))


def run_shard(bench: ShardBench) -> dict[str, Any]:
    n, r = bench.n, bench.replicas
    label = f"N={n} on {r} sharded replica{'s' if r > 1 else ''}"
    bench.setup()
    _say(f"{label}: {n} services over {len(bench.accounts)} accounts set up in "
         f"{bench.result['setup_seconds']} s")  # fmt: skip
    try:
        c = bench.converge()
        reps = c["replicas"]
        if not c["converged"]:
            _say(f"{label}: NOT all Ready after {bench.config.converge_timeout:.0f} s: "
                 f"{c['ready_at_end']} Ready; the others: {c['not_ready']}")  # fmt: skip
        _say(f"{label}: all Ready in {c['seconds_to_all_ready']} s (floor {c['floor_seconds']} "
             f"s, ratio {c['ratio_to_floor']}), writes {c['writes_made_total']}/"
             f"{c['writes_needed_total']}, throttled {c['throttled_total']}; Leases settled "
             f"{c['seconds_to_balanced']} s after start")  # fmt: skip
        _say(f"{label}: peak RSS MB {_by_replica({k: v['peak_rss_mb'] for k, v in reps.items()})}"
             f"; CPU-s {_by_replica({k: v['cpu_seconds'] for k, v in reps.items()})}; accounts "
             f"{_by_replica({k: v['accounts_held'] for k, v in reps.items()}, 0)}")  # fmt: skip
        if r > 1 and not bench.memray:
            f = bench.failover()
            _say(f"{label}: SIGKILL {f['victim']} ({f['victim_accounts']} accounts): held by "
                 f"the others after {f['seconds_to_accounts_held']} s, the edit of "
                 f"{f['edited_service']} at the cloud after {f['seconds_to_edit_written']} s, "
                 f"Ready after {f['seconds_to_edit_ready']} s")  # fmt: skip
        t = bench.totals()
        _say(f"{label}: whole run: {t['duplicate_writes']} duplicate writes "
             f"({t['duplicate_writes_across_replicas']} by two replicas), "
             f"{t['throttled_total']} throttled")  # fmt: skip
    finally:
        bench.stop()
    return bench.result


def _configured(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Config:
    """The named config with the command line's overrides."""
    config: Config = CONFIGS[args.config]
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        config = Config(**{**config.__dict__, "sizes": sizes})
    if args.scenarios:
        chosen = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
        unknown = set(chosen) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
        config = Config(**{**config.__dict__, "scenarios": ("converge", *chosen)})
    if args.other_sizes:
        other = tuple(int(s) for s in args.other_sizes.split(","))
        config = Config(**{**config.__dict__, "other_sizes": other})
    if args.converge_timeout:
        config = Config(**{**config.__dict__, "converge_timeout": args.converge_timeout})
    if args.replicas:
        replicas = tuple(int(r) for r in args.replicas.split(","))
        config = Config(**{**config.__dict__, "replicas": replicas})
    if args.clouds:
        clouds = tuple(args.clouds.split(","))
        others = tuple(c for c in clouds if c != "tencent")
        config = Config(**{**config.__dict__, "other_clouds": others})
        if "tencent" not in clouds:
            config = Config(**{**config.__dict__, "sizes": ()})
        if others and not config.other_sizes:
            config = Config(**{**config.__dict__, "other_sizes": (300,)})
    return config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="quick")
    parser.add_argument("--sizes", help="comma-separated N values (overrides the config's)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated scenarios to run after convergence, in order, from "
        f"{', '.join(SCENARIOS[1:])} (overrides the config's; converge always runs)",
    )
    parser.add_argument(
        "--clouds", help="comma-separated clouds to run, of tencent, huawei, baidu (default: "
        "TI-ONE, plus ModelArts and Qianfan in the full config)",
    )  # fmt: skip
    parser.add_argument("--other-sizes", help="N values for ModelArts and Qianfan")
    parser.add_argument(
        "--replicas", help="comma-separated replica counts, each run with --shard (the shard "
        "config's 1,4; the fewest is the base the others are compared with)",
    )  # fmt: skip
    parser.add_argument(
        "--converge-timeout", type=float, metavar="SECONDS",
        help="give up waiting for all Ready after this long (overrides the config's; sharding "
        "records what was Ready and goes on, the other configs fail)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--profile", action="store_true",
        help="run the operator under cProfile and tracemalloc; write its CPU and allocation "
        "reports per N (after convergence, at the end) into the work directory (implies "
        "--keep; the run's CPU and RSS figures then include the profilers' own cost)",
    )  # fmt: skip
    parser.add_argument(
        "--memray", action="store_true",
        help="run the operator (each replica, when sharding) under memray (Python stacks, "
        "aggregated) and write a report of what it held at its peak RSS per N into the work "
        "directory (implies --keep; RSS and CPU then include memray's own cost; sharded "
        "replicas stop at all Ready, without the failover, so the peak is the convergence's)",
    )  # fmt: skip
    parser.add_argument(
        "--tracemalloc-peak", action="store_true",
        help="run the operator (the first replica, when sharding) under tracemalloc and keep "
        "the allocation sites at its largest traced total up to all Ready, and what that held "
        "beyond what is held at all Ready, as tracemalloc-<N>[-<R>r-0].{peak,transient}.txt in "
        "the work directory (implies --keep; RSS and CPU then include tracemalloc's cost)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--replot", type=Path, metavar="JSON",
        help="only re-render the table and plot of an earlier result file (beside it)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.replot:
        path, table = report.write(json.loads(args.replot.read_text()), args.replot.parent)
        print(table)
        return 0
    config = _configured(parser, args)
    started = time.monotonic()
    load_before = os.getloadavg()
    run: dict[str, Any] = {
        "config": config.name,
        "date": datetime.date.today().isoformat(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {**config.__dict__, "poll_seconds": 5, "active_poll_seconds": 1},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": {},
        "clouds": {},
        "sharding": {},
    }
    work = Path(tempfile.mkdtemp(prefix="cloudinfer-bench-"))
    _say(f"config {config.name}: N in {list(config.sizes)}; work dir {work}")
    with world(work) as (cluster, sim):
        _say(f"control plane and TI-ONE simulator up in {time.monotonic() - started:.1f} s")
        for n in config.sizes if config.replicas else ():
            captures = {"memray": args.memray, "peak": args.tracemalloc_peak}
            by_replicas = {
                str(r): run_shard(ShardBench(cluster, sim, n, config, work, replicas=r, **captures))
                for r in config.replicas
            }
            run["sharding"][str(n)] = {"replicas": by_replicas, "comparison": compare(by_replicas)}
        for n in () if config.replicas else config.sizes:
            trace = work / f"profile-{n}" if args.profile else None
            memray = work / f"memray-{n}.bin" if args.memray else None
            peak = work / f"tracemalloc-{n}" if args.tracemalloc_peak else None
            bench = SizeBench(
                cluster, sim, n, config, work, trace_path=trace, memray_path=memray,
                peak_path=peak,
            )  # fmt: skip
            run["sizes"][str(n)] = run_size(bench)
        for cloud in config.other_clouds:
            other_sim = SimProcess(work / f"sim-{cloud}.log", cloud)
            try:
                for n in config.other_sizes:
                    cloud_bench = CloudBench(cluster, other_sim, SHAPES[cloud], n, config, work)
                    run["clouds"].setdefault(cloud, {})[str(n)] = run_cloud(cloud_bench)
            finally:
                other_sim.stop()
    load_after = os.getloadavg()
    run["duration_seconds"] = round(time.monotonic() - started, 1)
    run["machine"]["loadavg_1m"] = {"before": load_before[0], "after": load_after[0]}
    run["conditions"] = (
        f"{os.cpu_count()} CPUs shared with other workloads (1-min load {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after); control plane, simulator (speed 1, SCALE 2 s), "
        "operator and benchmark on one host over loopback; poll 5 s, active poll 1 s"
        + ("; OPERATOR UNDER cProfile + tracemalloc (CPU, RSS inflated)" if args.profile else "")
        + ("; OPERATOR UNDER memray (CPU, RSS inflated)" if args.memray else "")
        + ("; OPERATOR UNDER tracemalloc (CPU, RSS inflated)" if args.tracemalloc_peak else "")
        + (
            f"; sharding: {config.accounts} accounts, replicas {list(config.replicas)} each run "
            "with --shard and started at once"
            if config.replicas
            else ""
        )
    )
    path, table = report.write(run, args.out)
    print()
    print(table)
    _say(f"wrote {path} (+ .md, .png) in {run['duration_seconds']:.0f} s")
    run["profiled"] = args.profile
    if not (args.keep or args.profile or args.memray or args.tracemalloc_peak):
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
