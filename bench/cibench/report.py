"""The result file, the markdown table and the convergence plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

TARGET_N = 1000


def _fmt(value: Any, digits: int = 2) -> str:  # noqa: ANN401 - any JSON scalar
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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
    ("  floor s = max per action (2N PartialConfig at 20/s)", "", "convergence",
     ("floor_seconds",)),
    ("**cold convergence / floor**", "≤ 1.15 at N=1000", "convergence", ("ratio_to_floor",)),
    ("  same, from the first write (startup excluded)", "", "convergence",
     ("ratio_to_floor_from_first_write",)),
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
]  # fmt: skip


def _cell(result: dict[str, Any], section: str, keys: tuple[str, ...]) -> str:
    if keys == ("throttled",):
        return str(throttled_total(result))
    parts = []
    for key in keys:
        path = ([section] if section else []) + key.split(".")
        value = _get(result, *path)
        if isinstance(value, list):
            parts.append(", ".join(_fmt(v, 1) for v in value))
        else:
            parts.append(_fmt(value))
    return " / ".join(parts)


def verdicts(sizes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of issue 9 against the run: met, missed (by how much), or not measured."""
    out: list[dict[str, Any]] = []
    results = list(sizes.values())
    at = sizes.get(str(TARGET_N))

    def add(figure: str, target: str, value: object, met: bool | None, note: str = "") -> None:
        out.append(
            {"figure": figure, "target": target, "measured": value, "met": met, "note": note}
        )

    if at is None:
        note = f"N={TARGET_N} not in this run (make bench-full measures it)"
        add("cold convergence / floor", "≤ 1.15 at N=1000", None, None, note)
        add("edit → cloud p50/p99", "< 1 s / < 3 s at N=1000", None, None, note)
        add("RSS at N=1000", "≤ 150 MB", None, None, note)
    else:
        ratio = _get(at, "convergence", "ratio_to_floor")
        ok = ratio is not None and ratio <= 1.15
        note = "" if ratio is None or ok else f"over by {ratio - 1.15:.2f}"
        add("cold convergence / floor", "≤ 1.15 at N=1000", ratio, ok, note)
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
        "| figure | target | " + " | ".join(f"N={n}" for n in ns) + " |",
        "|---|---|" + "---|" * len(ns),
    ]
    for label, target, section, keys in ROWS:
        cells = " | ".join(_cell(sizes[n], section, keys) for n in ns)
        lines.append(f"| {label} | {target} | {cells} |")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for v in run["verdicts"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[v["met"]]
        note = f" ({v['note']})" if v["note"] else ""
        measured = json.dumps(v["measured"])
        lines.append(f"| {v['figure']}: {v['target']} | {measured} | {verdict}{note} |")
    lines += ["", f"Run took {run['duration_seconds']:.0f} s."]
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
    ready_ax.set_xlabel("seconds since the operator process started")
    ready_ax.set_ylabel("services Ready (fraction of N)")
    ready_ax.set_title("Cold convergence (dashed: rate-limit floor)", fontsize=10)
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
    fig.suptitle(f"TI-ONE simulator, {run['config']} run, {run['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(run: dict[str, Any], out_dir: Path) -> tuple[Path, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{run['date']}-{run['config']}"
    run["verdicts"] = verdicts(run["sizes"])
    stem.with_suffix(".json").write_text(json.dumps(run, indent=1) + "\n")
    table = markdown(run)
    stem.with_suffix(".md").write_text(table)
    plot(run, stem.with_suffix(".png"))
    return stem.with_suffix(".json"), table
