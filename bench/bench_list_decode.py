"""CPU-seconds per steady list of a TI-ONE account of 10,000 services, the observer's real path.

Not a timed test: it prints measured figures. Run:

    .venv/bin/python bench/bench_list_decode.py                 # this tree against BASELINE
    .venv/bin/python bench/bench_list_decode.py --baseline none # this tree alone
    .venv/bin/python bench/bench_list_decode.py --profile /tmp/lists.prof  # + cProfile (this tree)

The TI-ONE simulator serves 10,000 services (replicas, an RPS limit and a scheduled stop each,
as after convergence) from a thread of this process, rate limits lifted. Each variant of the
operator code runs in its own worker process: an `AccountObserver` (fake Kubernetes access,
the account's read budget raised to 1,000/s so a list is not paced) calls `observe_once` as
the operator's loop does: signed `DescribeModelServiceGroups` pages of 100 over loopback
HTTP, decoding, the snapshot and its diff against the previous one. The worker's own CPU
(`time.process_time`, the simulator is not in it) is measured per list, with the part spent in
the garbage collector (`gc.callbacks`); the first list (cold: nothing cached, published as it
is read) is reported apart from the steady ones. `--heap-objects` keeps that many other live
objects in the worker, as the operator's other state, for full collections to walk.

"Before" is the code at BASELINE, exported with `git archive` and run with the same worker;
the two variants alternate round by round so that the box's load hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudsim.control import SimControl

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "eaad750"
"""The code before issue 19's list-path caches (bench/README.md, "The steady list's CPU")."""
SERVICES = 10_000
# ruff: noqa: S105 - the keys below are simulator fixtures, not secrets
SECRET_ID = "AKIDbenchlistdecode000000000000"
SECRET_KEY = "bench-list-decode-key"


def _seed(control: SimControl) -> None:
    control.add_account(name="b", secret_id=SECRET_ID, secret_key=SECRET_KEY)
    control.add_services(
        SERVICES,
        account="b",
        name="bench",
        replicas=3,
        rps_enabled=True,
        rps_limit=50,
        schedule_stop_time="2027-01-01T00:00:00Z",
    )
    control.set_rate_limits(DescribeModelServiceGroups=0)


# ----- worker: one variant of the operator code, in its own process -----------------------------


async def _worker_lists(
    endpoint: str, lists: int, profile: Path | None, heap_objects: int
) -> dict[str, Any]:
    from cloudinfer.cloud.allowlist import EndpointAllowList  # noqa: PLC0415
    from cloudinfer.reconcile.kube_access import SecretData  # noqa: PLC0415
    from cloudinfer.reconcile.metrics import Metrics  # noqa: PLC0415
    from cloudinfer.reconcile.observer import AccountObserver  # noqa: PLC0415

    class Kube:
        async def read_secret(self, namespace: str, name: str) -> SecretData | None:
            data = {
                "accessKeyId": base64.b64encode(SECRET_ID.encode()).decode(),
                "secretAccessKey": base64.b64encode(SECRET_KEY.encode()).decode(),
            }
            return SecretData(data, "1")

        async def read_configmap_key(self, namespace: str, name: str, key: str) -> str | None:
            return None

        async def patch_status(
            self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
        ) -> None:
            return None

        def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
            return None

    body = {
        "metadata": {"namespace": "bench", "name": "acct", "generation": 1, "uid": "u"},
        "spec": {
            "provider": "tencent",
            "region": "ap-guangzhou",
            "endpoint": endpoint,
            "credentialsSecretRef": {"name": "creds"},
            "rateBudgets": {"readsPerSecond": 1000},
            "pollIntervalSeconds": 5,
        },
    }
    observer = AccountObserver(
        ("bench", "acct"), Kube(), Metrics(), allow_list=EndpointAllowList.of(["127.0.0.1"])
    )
    # The rest of the operator's heap (its Kopf and reconciler state: ~3 million objects at
    # N = 10,000), which every full collection walks.
    heap = [[i] for i in range(heap_objects)]
    collecting = [0.0, 0.0]  # CPU-s in the garbage collector so far; when the current one began

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.process_time()
        else:
            collecting[0] += time.process_time() - collecting[1]

    gc.callbacks.append(collector)
    profiler = None
    seconds: list[float] = []
    in_gc: list[float] = []
    for i in range(lists + 1):
        if i == 1 and profile is not None:
            import cProfile  # noqa: PLC0415

            profiler = cProfile.Profile()
            profiler.enable()
        started, gc_before = time.process_time(), collecting[0]
        await observer.observe_once(body)
        seconds.append(time.process_time() - started)
        in_gc.append(collecting[0] - gc_before)
        snapshot = observer.snapshot
        if snapshot.error is not None or len(snapshot.services) != SERVICES:
            raise SystemExit(f"list {i} failed: {snapshot.error!r}, {len(snapshot.services)}")
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    await observer._close_client()
    del heap
    return {"cold": seconds[0], "steady": seconds[1:], "steady_gc": in_gc[1:]}


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--lists", type=int, required=True)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--heap-objects", type=int, default=0)
    args = parser.parse_args(argv)
    result = _worker_lists(args.endpoint, args.lists, args.profile, args.heap_objects)
    print(json.dumps(asyncio.run(result)))


# ----- driver ------------------------------------------------------------------------------------


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "operator"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "operator"


def _run_worker(
    operator_dir: Path, endpoint: str, lists: int, profile: Path | None, heap_objects: int
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--endpoint", endpoint, "--lists", str(lists)]
    command += ["--heap-objects", str(heap_objects)]
    if profile is not None:
        command += ["--profile", str(profile)]
    env = {**os.environ, "PYTHONPATH": str(operator_dir)}
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision, or 'none'")
    parser.add_argument("--rounds", type=int, default=3, help="worker runs per variant")
    parser.add_argument("--lists", type=int, default=5, help="steady lists per worker run")
    parser.add_argument("--profile", type=Path, help="write a cProfile of this tree's lists here")
    parser.add_argument(
        "--heap-objects",
        type=int,
        default=0,
        help="live objects held beside the observer, as the operator's other state (3000000 "
        "is about the operator's heap at N = 10,000)",
    )
    args = parser.parse_args()

    from cloudsim.server import serve_in_thread  # noqa: PLC0415

    variants: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bench-list-decode-") as tmp:
        if args.baseline != "none":
            variants[f"before ({args.baseline})"] = _export(args.baseline, Path(tmp))
        variants["after (this tree)"] = ROOT / "operator"
        with serve_in_thread("tencent", speed=0) as sim:
            _seed(sim.control)
            endpoint = sim.base_url
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
            for round_ in range(args.rounds):
                for name, operator_dir in variants.items():
                    profile = None
                    if operator_dir == ROOT / "operator" and round_ == 0:
                        profile = args.profile
                    results[name].append(
                        _run_worker(operator_dir, endpoint, args.lists, profile, args.heap_objects)
                    )
                    if profile is not None:
                        print(f"profile of the steady lists: {profile}", flush=True)
    print(
        f"TI-ONE, {SERVICES} services, pages of 100 over loopback; {args.rounds} worker runs x "
        f"{args.lists} steady lists per variant, {args.heap_objects:,} other live objects "
        f"(1-min load {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{'variant':24s} {'cold list CPU-s':>16s} {'steady list CPU-s (median, min-max)':>38s} "
        f"{'of which GC':>12s}"
    )
    medians: dict[str, float] = {}
    for name, runs in results.items():
        steady = [s for run in runs for s in run["steady"]]
        cold = statistics.median(run["cold"] for run in runs)
        medians[name] = statistics.median(steady)
        in_gc = statistics.median(s for run in runs for s in run["steady_gc"])
        spread = f"{medians[name]:.3f} ({min(steady):.3f}-{max(steady):.3f})"
        print(f"{name:24s} {cold:16.3f} {spread:>38s} {in_gc:12.3f}")
    if len(medians) == 2:
        before, after = medians.values()
        print(f"steady list CPU-s, after / before: {after / before:.3f} (/{before / after:.1f})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2:])
    else:
        main()
