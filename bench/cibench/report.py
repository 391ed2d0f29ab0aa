"""The result file, the markdown table and the convergence plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from cibench import shard_report
from cibench.formatting import fmt

TARGET_N = 1000


def _get(result: dict[str, Any], *path: str) -> Any:  # noqa: ANN401 - any JSON value
    node: Any = result
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def throttled_total(result: dict[str, Any]) -> int:
    """Throttling errors the simulator recorded for the operator's calls, all scenarios."""
    return int(
        (_get(result, "convergence", "throttled_total") or 0)
        + (_get(result, "steady", "throttled_operator") or 0)
        + (_get(result, "edits", "throttled_total") or 0)
        + (_get(result, "drift", "throttled_total") or 0)
    )


ROWS: list[tuple[str, str, str, tuple[str, ...]]] = [
    # (label, target, section, keys shown joined by " / "); keys may be dotted paths
    ("cold convergence: s to all Ready (from operator start)", "", "convergence",
     ("seconds_to_all_ready",)),
    ("  first / last cloud write (s after start)", "", "convergence",
     ("seconds_to_first_write", "seconds_to_last_write")),
    ("  writes made / needed (MMS + PartialConfig)", "", "convergence",
     ("writes_made_total", "writes_needed_total")),
    ("  physical floor s = max per action (N SCALE, N PartialConfig, 20/s each)", "",
     "convergence", ("floor_seconds",)),
    ("**cold convergence / physical floor**", "≤ 1.10 at N=1000", "convergence",
     ("ratio_to_floor",)),
    ("  same, from the first write (startup excluded)", "", "convergence",
     ("ratio_to_floor_from_first_write",)),
    ("  ratio to the old N/10 floor (two PartialConfig calls per service)¹", "", "convergence",
     ("ratio_to_floor_two_partial_calls",)),
    ("  max calls in any 1 s at the sim: MMS / PartialConfig", "(paced: 20)", "convergence",
     ("max_calls_in_any_1s.ModifyModelService",
      "max_calls_in_any_1s.ModifyModelServicePartialConfig")),
    ("  list calls during convergence (pages, active poll 1 s)", "", "convergence",
     ("list_calls",)),
    ("**throttling errors (operator, all scenarios)**", "0", "", ("throttled",)),
    ("**steady cloud reads per poll (operator)**", "≤ ceil(N/100) + changed", "steady",
     ("reads_per_poll",)),
    ("  ceil(N/100)", "", "steady", ("reads_per_poll_target",)),
    ("  baseline reads per poll (a describe per service)", "N", "steady",
     ("baseline_reads_per_poll",)),
    ("  baseline round s (50/s describe limit)", "", "steady", ("baseline_round_seconds",)),
    ("  polls seen / measured poll interval s", "", "steady",
     ("polls", "measured_poll_interval_seconds")),
    ("**steady Kubernetes writes per minute**", "0", "steady", ("kube_writes_per_minute",)),
    ("**edit → cloud write p50 / p99 (s)**", "< 1 / < 3 at N=1000", "edits", ("p50", "p99")),
    ("  edits measured / timeouts", "≥ 50", "edits", ("count", "timeouts")),
    ("drift → first list call after the edit p50 / p99 (s)", "", "drift",
     ("first_list_after_edit.p50", "first_list_after_edit.p99")),
    ("drift → detected (status.observed) p50 / p99 (s)", "", "drift",
     ("detect.p50", "detect.p99")),
    ("drift → corrected (cloud write) p50 / p99 (s)", "", "drift",
     ("correct.p50", "correct.p99")),
    ("  detected / corrected p99 ÷ poll interval (5 s)", "", "drift",
     ("detect_p99_over_poll", "correct_p99_over_poll")),
    ("**operator RSS MB (end / peak)**", "≤ 150 at N=1000", "footprint",
     ("rss_mb", "peak_rss_mb")),
    ("  operator CPU s: convergence / whole run", "", "",
     ("convergence.operator_cpu_seconds", "footprint.cpu_seconds_total")),
    ("  operator CPU s to the first cloud write (start-up)", "", "convergence",
     ("operator_cpu_seconds_to_first_write",)),
    ("  operator CPU s per minute, steady state", "", "steady",
     ("operator_cpu_seconds_per_minute",)),
    ("**one window boundary: last STOP s after it**", "≤ floor + 5", "boundary",
     ("last_stop_seconds",)),
    ("  floor s (N STOPs at 20/s) / first STOP s after the boundary", "", "boundary",
     ("floor_seconds", "first_stop_seconds")),
    ("  STOPs made / before the boundary / max in any 1 s", "N / 0 / 20", "boundary",
     ("stops", "stops_before_boundary", "max_calls_in_any_1s")),
    ("  every status ScheduledStop (s after the boundary)", "", "boundary",
     ("all_scheduled_stop_seconds",)),
    ("  steady operator CPU, % of one core", "≤ 10 at N=10000", "steady",
     ("operator_cpu_percent_of_one_core",)),
    ("  operator CPU s per converged service", "", "convergence",
     ("cpu_seconds_per_converged_service",)),
    ("  status writes during convergence (watch MODIFIED events)", "", "convergence",
     ("status_writes_during_convergence",)),
]  # fmt: skip

SCALE_N = "10000"
TODAY_CPU_PER_SERVICE = 25.38 / 1000
"""CPU-s per converged service at N = 1,000 before issue 19 (results/2026-12-02-full.json)."""


def scale_verdicts(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 19 item 4: N = 10,000 in one account, or over 10 accounts."""
    at = run["sizes"].get(SCALE_N)
    if at is None:
        return []
    out: list[dict[str, Any]] = []

    def add(figure: str, target: str, value: Any, met: bool) -> None:  # noqa: ANN401 - JSON
        out.append({"figure": figure, "target": target, "measured": value, "met": met,
                    "note": ""})  # fmt: skip

    accounts = _get(at, "convergence", "accounts") or 1
    if accounts == 1:
        ratio = _get(at, "convergence", "ratio_to_floor")
        add("N=10000 one account: convergence / physical floor", "≤ 1.10", ratio,
            ratio is not None and ratio <= 1.10)  # fmt: skip
        peak = _get(at, "footprint", "peak_rss_mb")
        add("N=10000 one account: peak RSS MB", "≤ 500", peak, peak is not None and peak <= 500)
        throttles = throttled_total(at)
        add("N=10000 one account: throttles", "0", throttles, throttles == 0)
        kube = _get(at, "steady", "kube_writes_per_minute")
        add("N=10000 one account: steady Kubernetes writes", "0", kube, kube == 0)
        cpu = _get(at, "steady", "operator_cpu_percent_of_one_core")
        add("N=10000 one account: steady CPU % of one core", "≤ 10", cpu,
            cpu is not None and cpu <= 10)  # fmt: skip
        p99 = _get(at, "edits", "p99")
        add("N=10000 one account: edit → cloud p99 s", "< 1", p99, p99 is not None and p99 < 1)
    else:
        per = _get(at, "convergence", "cpu_seconds_per_converged_service")
        limit = TODAY_CPU_PER_SERVICE / 2
        add(f"N=10000 over {accounts} accounts: CPU-s per converged service",
            f"≤ {limit:.4f} (half of N=1000 before issue 19)", per,
            per is not None and per <= limit)  # fmt: skip
    return out


OTHER_TARGET_N = 300
OTHER_ROWS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("cold convergence: s to all Ready (from operator start)", "", "convergence",
     ("seconds_to_all_ready",)),
    ("  first / last cloud write (s after start)", "", "convergence",
     ("seconds_to_first_write", "seconds_to_last_write")),
    ("  writes made / needed", "", "convergence", ("writes_made_total", "writes_needed_total")),
    ("  physical floor s = max per action (N calls each at its budget)", "", "convergence",
     ("floor_seconds",)),
    ("**cold convergence / physical floor**", "≤ 1.15 at N=300", "convergence",
     ("ratio_to_floor",)),
    ("  same, from the first write (startup excluded)", "", "convergence",
     ("ratio_to_floor_from_first_write",)),
    ("**throttling errors (operator)**", "0", "", ("throttled",)),
    ("**steady cloud reads per poll (operator)**", "", "steady", ("reads_per_poll",)),
    ("  baseline reads per poll (a detail read per service) / its round s", "N", "steady",
     ("baseline_reads_per_poll", "baseline_round_seconds")),
    ("**steady Kubernetes writes per minute**", "0", "steady", ("kube_writes_per_minute",)),
    ("drift → detected (status.observed) p50 / p99 (s)", "", "drift",
     ("detect.p50", "detect.p99")),
    ("drift → corrected (cloud write) p50 / p99 (s)", "", "drift",
     ("correct.p50", "correct.p99")),
    ("  drift trials / missed", "", "drift", ("trials", "missed")),
    ("operator RSS MB (end / peak)", "", "footprint", ("rss_mb", "peak_rss_mb")),
    ("operator CPU s: convergence / whole run", "", "",
     ("convergence.operator_cpu_seconds", "footprint.cpu_seconds_total")),
]  # fmt: skip


def other_throttled(result: dict[str, Any]) -> int:
    return int(
        (_get(result, "convergence", "throttled_total") or 0)
        + (_get(result, "steady", "throttled") or 0)
        + (_get(result, "drift", "throttled_total") or 0)
    )


def _cell(result: dict[str, Any], section: str, keys: tuple[str, ...]) -> str:
    if keys == ("throttled",):
        return str(other_throttled(result) if "cloud" in result else throttled_total(result))
    parts = []
    for key in keys:
        path = ([section] if section else []) + key.split(".")
        value = _get(result, *path)
        if isinstance(value, list):
            parts.append(", ".join(fmt(v, 1) for v in value))
        else:
            parts.append(fmt(value, 4 if key.endswith("per_converged_service") else 2))
    return " / ".join(parts)


def other_verdicts(clouds: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """ModelArts and Qianfan at N = 300: cold convergence within 1.15 of the floor."""
    out: list[dict[str, Any]] = []
    for by_n in clouds.values():
        at = by_n.get(str(OTHER_TARGET_N))
        if at is None:
            continue
        ratio = _get(at, "convergence", "ratio_to_floor")
        ok = ratio is not None and ratio <= 1.15
        out.append({
            "figure": f"{at['cloud']} cold convergence / physical floor",
            "target": "≤ 1.15 at N=300", "measured": ratio, "met": ok,
            "note": "" if ok or ratio is None else f"over by {ratio - 1.15:.2f}",
        })  # fmt: skip
        throttles = other_throttled(at)
        out.append({
            "figure": f"{at['cloud']} throttling errors", "target": "0", "measured": throttles,
            "met": throttles == 0, "note": "",
        })  # fmt: skip
        kube = _get(at, "steady", "kube_writes_per_minute")
        out.append({
            "figure": f"{at['cloud']} steady Kubernetes writes", "target": "0",
            "measured": kube, "met": kube == 0, "note": "",
        })  # fmt: skip
    return out


def verdicts(sizes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of issue 9 against the run: met, missed (by how much), or not measured."""
    out: list[dict[str, Any]] = []
    results = list(sizes.values())
    at = sizes.get(str(TARGET_N))

    def add(figure: str, target: str, value: object, met: bool | None, note: str = "") -> None:
        out.append(
            {"figure": figure, "target": target, "measured": value, "met": met, "note": note}
        )

    if not sizes:
        return out
    if at is None:
        note = f"N={TARGET_N} not in this run (make bench-full measures it)"
        add("cold convergence / physical floor", "≤ 1.10 at N=1000", None, None, note)
        add("edit → cloud p50/p99", "< 1 s / < 3 s at N=1000", None, None, note)
        add("RSS at N=1000", "≤ 150 MB", None, None, note)
    else:
        ratio = _get(at, "convergence", "ratio_to_floor")
        ok = ratio is not None and ratio <= 1.10
        note = "" if ratio is None or ok else f"over by {ratio - 1.10:.2f}"
        add("cold convergence / physical floor", "≤ 1.10 at N=1000", ratio, ok, note)
        p50, p99 = _get(at, "edits", "p50"), _get(at, "edits", "p99")
        ok = p50 is not None and p99 is not None and p50 < 1 and p99 < 3
        add("edit → cloud p50/p99", "< 1 s / < 3 s at N=1000", [p50, p99], ok)
        rss = _get(at, "footprint", "peak_rss_mb")
        ok = rss is not None and rss <= 150
        note = "" if rss is None or ok else f"over by {rss - 150:.0f} MB"
        add("RSS at N=1000 (peak)", "≤ 150 MB", rss, ok, note)
    flips = {r["n"]: _get(r, "boundary", "last_stop_seconds") for r in results if "boundary" in r}
    if flips:
        ok = all(_get(r, "boundary", "within_target") for r in results if "boundary" in r)
        add("one window boundary: last STOP after it", "≤ N/20 + 5 s", flips, ok)
    throttles = {r["n"]: throttled_total(r) for r in results}
    ok = all(v == 0 for v in throttles.values())
    add("throttling errors", "0 in all scenarios", throttles, ok)
    steady = [r for r in results if "steady" in r]
    if not steady:
        add("steady cloud reads per poll", "≤ ceil(N/100)", None, None, "steady not run")
        add("steady Kubernetes writes", "0", None, None, "steady not run")
        return out
    reads = {r["n"]: _get(r, "steady", "reads_per_poll") for r in steady}
    ok = all(v is not None and v <= math.ceil(n / 100) for n, v in reads.items())
    add("steady cloud reads per poll", "≤ ceil(N/100)", reads, ok)
    kube = {r["n"]: _get(r, "steady", "kube_writes_per_minute") for r in steady}
    add("steady Kubernetes writes", "0", kube, all(v == 0 for v in kube.values()))
    return out


def markdown(run: dict[str, Any]) -> str:
    sizes: dict[str, dict[str, Any]] = run["sizes"]
    ns = list(sizes)
    lines = [
        f"### {run['config']} — {run['date']}",
        "",
        f"Conditions: {run['conditions']}",
        "",
    ]
    if ns:
        lines += [
            "| figure | target | " + " | ".join(f"N={n}" for n in ns) + " |",
            "|---|---|" + "---|" * len(ns),
        ]
    for label, target, section, keys in ROWS if ns else []:
        cells = " | ".join(_cell(sizes[n], section, keys) for n in ns)
        lines.append(f"| {label} | {target} | {cells} |")
    others = [(by_n[n]["cloud"], n, by_n[n]) for by_n in run.get("clouds", {}).values()
              for n in by_n]  # fmt: skip
    if others:
        lines += [
            "",
            "| figure (ModelArts, Qianfan) | target | "
            + " | ".join(f"{cloud} N={n}" for cloud, n, _ in others)
            + " |",
            "|---|---|" + "---|" * len(others),
        ]
        for label, target, section, keys in OTHER_ROWS:
            cells = " | ".join(_cell(result, section, keys) for _, _, result in others)
            lines.append(f"| {label} | {target} | {cells} |")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for v in run["verdicts"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[v["met"]]
        note = f" ({v['note']})" if v["note"] else ""
        measured = json.dumps(v["measured"])
        lines.append(f"| {v['figure']}: {v['target']} | {measured} | {verdict}{note} |")
    lines += [
        "",
        "¹ Footnote: the floor bench/ used before issue 19, N/10 s, assumed the RPS limit and "
        "the scheduled stop took two PartialConfig calls per service; the API takes both in "
        "one, so the physical floor is N/20 s.",
        "",
        f"Run took {run['duration_seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def plot(run: dict[str, Any], path: Path) -> None:
    """Left: services Ready (fraction of N) against seconds since the operator started.
    Right: cumulative cloud writes per action, with the 20/s limit for comparison."""
    fig, (ready_ax, writes_ax) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=90)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (n, result) in enumerate(run["sizes"].items()):
        conv = result.get("convergence") or {}
        series = conv.get("ready_series") or []
        if not series:
            continue
        color = colors[i % len(colors)]
        xs = [0.0] + [t for t, _ in series]
        ys = [0.0] + [c / int(n) for _, c in series]
        label = (
            f"N={n}: all Ready {conv['seconds_to_all_ready']:.1f} s, floor "
            f"{conv['floor_seconds']:.1f} s, ratio {conv['ratio_to_floor']:.2f}"
        )
        ready_ax.step(xs, ys, where="post", color=color, label=label)
        ready_ax.axvline(conv["floor_seconds"], color=color, linestyle="--", linewidth=0.8)
        for action, times in (conv.get("write_series") or {}).items():
            if times:
                partial = action.endswith("PartialConfig")
                short, style = ("PartialConfig", ":") if partial else ("MMS", "-")
                writes_ax.step(times, range(1, len(times) + 1), where="post", color=color,
                               linestyle=style, label=f"N={n} {short}")  # fmt: skip
    others = [(by_n[n], n) for by_n in run.get("clouds", {}).values() for n in by_n]
    for j, (result, n) in enumerate(others, start=len(run["sizes"])):
        conv = result.get("convergence") or {}
        series = conv.get("ready_series") or []
        if series:
            color = colors[j % len(colors)]
            ready_ax.step(
                [0.0] + [t for t, _ in series], [0.0] + [c / int(n) for _, c in series],
                where="post", color=color, linestyle="-.",
                label=f"{result['cloud']} N={n}: {conv['seconds_to_all_ready']:.1f} s, floor "
                f"{conv['floor_seconds']:.1f} s, ratio {conv['ratio_to_floor']:.2f}",
            )  # fmt: skip
            ready_ax.axvline(conv["floor_seconds"], color=color, linestyle="--", linewidth=0.8)
    ready_ax.set_xlabel("seconds since the operator process started")
    ready_ax.set_ylabel("services Ready (fraction of N)")
    ready_ax.set_title("Cold convergence (dashed: physical rate-limit floor)", fontsize=10)
    ready_ax.set_ylim(0, 1.05)
    ready_ax.grid(alpha=0.3)
    ready_ax.legend(fontsize=7, loc="lower right")
    right = writes_ax.get_xlim()[1]
    writes_ax.plot([0, right], [0, 20 * right], color="grey", linewidth=0.8, label="20 writes/s")
    writes_ax.set_xlim(0, right)
    writes_ax.set_ylim(bottom=0)
    writes_ax.set_xlabel("seconds since the operator process started")
    writes_ax.set_ylabel("cloud writes (cumulative, per action)")
    writes_ax.set_title("Writes per action vs the 20/s limit", fontsize=10)
    writes_ax.grid(alpha=0.3)
    writes_ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Simulators, {run['config']} run, {run['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(run: dict[str, Any], out_dir: Path) -> tuple[Path, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{run['date']}-{run['config']}"
    if run.get("sharding"):
        run["verdicts"] = shard_report.verdicts(run)
        stem.with_suffix(".json").write_text(json.dumps(run, indent=1) + "\n")
        table = shard_report.markdown(run)
        stem.with_suffix(".md").write_text(table)
        shard_report.plot(run, stem.with_suffix(".png"))
        return stem.with_suffix(".json"), table
    run["verdicts"] = (
        verdicts({k: v for k, v in run["sizes"].items() if k != SCALE_N})
        + other_verdicts(run.get("clouds", {}))
        + scale_verdicts(run)
    )
    stem.with_suffix(".json").write_text(json.dumps(run, indent=1) + "\n")
    table = markdown(run)
    stem.with_suffix(".md").write_text(table)
    plot(run, stem.with_suffix(".png"))
    return stem.with_suffix(".json"), table
