"""The sharding run's table, verdicts and plot (issue 23 item 5): each N on 1 replica and on
4, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from cibench.formatting import fmt as _fmt

RSS_TARGET = 0.40
"""Per-replica peak RSS with 4 replicas ≤ 40 % of the single replica's."""
FAILOVER_TARGET_SECONDS = 30.0
TARGET_N = "10000"


def _short(identity: str) -> str:
    """r<i>-<pid> -> r<i>."""
    return identity.partition("-")[0]


def _replicas(count: str) -> str:
    return f"{count} replica" + ("" if count == "1" else "s")


def _per_replica(values: dict[str, Any], digits: int = 1) -> str:
    return ", ".join(f"{_short(k)} {_fmt(v, digits)}" for k, v in sorted(values.items()))


def _field(result: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    return {k: v[key] for k, v in ((result.get(section) or {}).get("replicas") or {}).items()}


def _columns(run: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(N, replicas, that run's result, the comparison of its N), in run order."""
    return [
        (n, r, result, at["comparison"])
        for n, at in run["sharding"].items()
        for r, result in at["replicas"].items()
    ]


def _ratio(comparison: dict[str, Any], r: str, key: str) -> str:
    entry = comparison.get(r)
    return "1 (base)" if entry is None else _fmt(entry[key], 3)


def _rows(result: dict[str, Any], r: str, comparison: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, target, cell) for one column."""
    conv = result.get("convergence") or {}
    fail = result.get("failover") or {}
    tot = result.get("totals") or {}
    none = "-" if r != "1" else "n/a (no other replica)"
    return [
        ("cold convergence: s to all Ready (all replicas started at once)", "",
         _fmt(conv.get("seconds_to_all_ready"))),
        ("  services Ready when convergence ended (if not all: Ready reasons of the rest)",
         "N", f"{conv.get('ready_at_end')}" + ("" if conv.get("converged", True) else
         f" (NOT CONVERGED: {json.dumps((conv.get('not_ready') or {}).get('reasons'))})")),
        ("  per-account physical floor s (N/20 services per account, 20/s per action)", "",
         _fmt(conv.get("floor_seconds"))),
        ("**all Ready / per-account floor**", "", _fmt(conv.get("ratio_to_floor"), 3)),
        ("  same, from the first write (start-up excluded)", "",
         _fmt(conv.get("ratio_to_floor_from_first_write"), 3)),
        ("  all replicas healthy / first / last cloud write (s after start)", "",
         " / ".join(_fmt(conv.get(k)) for k in ("seconds_to_all_healthy",
                                                 "seconds_to_first_write",
                                                 "seconds_to_last_write"))),
        ("  writes made / needed", "", f"{conv.get('writes_made_total')} / "
         f"{conv.get('writes_needed_total')}"),
        ("  max calls one account got in any 1 s: MMS / PartialConfig", "(paced: 20)",
         " / ".join(str(v) for v in (conv.get("max_calls_in_any_1s_one_account") or {}).values())),
        ("  Leases as `assign` says, s after start / Lease transitions (handovers) by then", "",
         f"{_fmt(conv.get('seconds_to_balanced'))} / {conv.get('lease_transitions')}"),
        ("  accounts written by two replicas during convergence (handovers)", "",
         _fmt(conv.get("accounts_written_by_two_replicas"))),
        ("accounts held per replica", "even", _per_replica(_field(result, "convergence",
                                                                  "accounts_held"), 0)),
        ("cloud writes per replica", "", _per_replica(_field(result, "convergence", "writes"), 0)),
        ("**peak RSS MB per replica (to all Ready)**", "",
         _per_replica(_field(result, "convergence", "peak_rss_mb"))),
        ("  largest / mean per replica", "", f"{_fmt(conv.get('peak_rss_mb_max_replica'), 1)} / "
         f"{_fmt(conv.get('peak_rss_mb_mean_replica'), 1)}"),
        ("**largest per-replica peak RSS ÷ the 1-replica run's**", "≤ 0.40 with 4",
         _ratio(comparison, r, "peak_rss_max_replica_over_base")),
        ("  mean per-replica peak RSS ÷ the 1-replica run's", "",
         _ratio(comparison, r, "peak_rss_mean_replica_over_base")),
        ("**CPU-s per replica (to all Ready)**", "",
         _per_replica(_field(result, "convergence", "cpu_seconds"))),
        ("  CPU split (share of the replicas' CPU-s)", "",
         _per_replica(_field(result, "convergence", "cpu_share"), 2)),
        ("  CPU-s all replicas / largest replica", "", f"{_fmt(conv.get('cpu_seconds_total'))} / "
         f"{_fmt(conv.get('cpu_seconds_max_replica'))}"),
        ("  largest replica's / all replicas' CPU-s ÷ the 1-replica run's", "",
         f"{_ratio(comparison, r, 'cpu_max_replica_over_base')} / "
         f"{_ratio(comparison, r, 'cpu_total_over_base')}"),
        ("failover: SIGKILL the replica holding the most accounts (its accounts)", "",
         f"{_short(fail['victim'])} ({fail['victim_accounts']})" if fail else none),
        ("**failover: s until the survivors hold its accounts**", "",
         _fmt(fail.get("seconds_to_accounts_held")) if fail else none),
        ("**failover: s until an edit of its service (made at the kill) reaches the cloud**",
         "≤ 30", _fmt(fail.get("seconds_to_edit_written")) if fail else none),
        ("  s until that service is Ready at the edit / until the survivors are balanced", "",
         f"{_fmt(fail.get('seconds_to_edit_ready'))} / {_fmt(fail.get('seconds_to_balanced'))}"
         if fail else none),
        ("  its accounts went to", "", _per_replica(fail.get("moved_to") or {}, 0)
         if fail else none),
        ("  survivors' CPU-s from the kill to balanced", "",
         _per_replica(fail.get("survivor_cpu_seconds") or {}) if fail else none),
        ("  writes / throttles after the kill", "0 throttles",
         f"{fail.get('writes_after_kill')} / {fail.get('throttled_after_kill')}"
         if fail else none),
        ("**duplicate writes, whole run (journal)**", "0", _fmt(tot.get("duplicate_writes"))),
        ("  of them written by two replicas (else: one replica's retry)", "0",
         _fmt(tot.get("duplicate_writes_across_replicas"))),
        ("**throttles, whole run (journal: budget overruns)**", "0",
         _fmt(tot.get("throttled_total"))),
        ("peak RSS MB per replica, whole run (failover included)", "",
         _per_replica(_field(result, "totals", "peak_rss_mb"))),
        ("CPU-s per replica, whole run", "", _per_replica(_field(result, "totals",
                                                                 "cpu_seconds"))),
    ]  # fmt: skip


def verdicts(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's "done when" figures, per N (the targets are stated at N = 10,000)."""
    out: list[dict[str, Any]] = []

    def add(figure: str, target: str, value: object, met: bool | None, note: str) -> None:
        out.append(
            {"figure": figure, "target": target, "measured": value, "met": met, "note": note}
        )

    for n, at in run["sharding"].items():
        note = "" if n == TARGET_N else f"validation size; the target is stated at N={TARGET_N}"
        comparison, results = at["comparison"], at["replicas"]
        for r, entry in comparison.items():
            if r == "base_replicas":
                continue
            ratio = entry["peak_rss_max_replica_over_base"]
            add(f"N={n}: largest per-replica peak RSS on {r} replicas ÷ on "
                f"{comparison['base_replicas']}", f"≤ {RSS_TARGET:.2f}", ratio,
                ratio <= RSS_TARGET, note)  # fmt: skip
        for r, result in results.items():
            fail = result.get("failover")
            if fail:
                took = fail.get("seconds_to_edit_written")
                add(f"N={n}, {_replicas(r)}: failover (kill → the edit at the cloud) s",
                    f"≤ {FAILOVER_TARGET_SECONDS:.0f}", took,
                    took is not None and took <= FAILOVER_TARGET_SECONDS, note)  # fmt: skip
            tot = result.get("totals") or {}
            dup, thr = tot.get("duplicate_writes"), tot.get("throttled_total")
            add(f"N={n}, {_replicas(r)}: duplicate writes / throttles", "0 / 0", [dup, thr],
                dup == 0 and thr == 0, note)  # fmt: skip
    return out


def markdown(run: dict[str, Any]) -> str:
    columns = _columns(run)
    lines = [
        f"### {run['config']} — {run['date']}",
        "",
        f"Conditions: {run['conditions']}",
        "",
        "| figure | target | "
        + " | ".join(f"N={n}, {_replicas(r)}" for n, r, _, _ in columns)
        + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    table = [_rows(result, r, comparison) for _, r, result, comparison in columns]
    for i, (label, target, _) in enumerate(table[0] if table else []):
        lines.append(f"| {label} | {target} | " + " | ".join(t[i][2] for t in table) + " |")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for v in run["verdicts"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[v["met"]]
        note = f" ({v['note']})" if v["note"] else ""
        lines.append(
            f"| {v['figure']}: {v['target']} | {json.dumps(v['measured'])} | {verdict}{note} |"
        )
    lines += ["", f"Run took {run['duration_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(run: dict[str, Any], path: Path) -> None:
    """Left: services Ready against seconds since the replicas started. Right: each
    replica's RSS over the whole run, the kill marked."""
    fig, (ready_ax, rss_ax) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=90)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for i, (n, r, result, _) in enumerate(_columns(run)):
        color = colors[i % len(colors)]
        conv = result.get("convergence") or {}
        series = conv.get("ready_series") or []
        if series:
            ready_ax.step(
                [0.0] + [t for t, _ in series], [0.0] + [c / int(n) for _, c in series],
                where="post", color=color,
                label=f"N={n}, {_replicas(r)}: {_fmt(conv['seconds_to_all_ready'], 1)} s, "
                f"ratio {_fmt(conv['ratio_to_floor'])}",
            )  # fmt: skip
            ready_ax.axvline(conv["floor_seconds"], color=color, linestyle="--", linewidth=0.8)
        rss = (result.get("totals") or {}).get("rss_series") or {}
        for j, (identity, points) in enumerate(sorted(rss.items())):
            if points:
                rss_ax.plot([t for t, _ in points], [m for _, m in points], color=color,
                            linestyle=styles[j % len(styles)], linewidth=1,
                            label=f"N={n}, {_replicas(r)}: {_short(identity)}")  # fmt: skip
        fail = result.get("failover")
        if fail:
            rss_ax.axvline(fail["killed_at_seconds"], color=color, linewidth=0.8, alpha=0.6)
    ready_ax.set_xlabel("seconds since the replicas started")
    ready_ax.set_ylabel("services Ready (fraction of N)")
    ready_ax.set_title("Cold convergence (dashed: per-account floor)", fontsize=10)
    ready_ax.set_ylim(0, 1.05)
    ready_ax.grid(alpha=0.3)
    if ready_ax.get_legend_handles_labels()[0]:
        ready_ax.legend(fontsize=7, loc="lower right")
    rss_ax.set_xlabel("seconds since the replicas started (vertical line: SIGKILL)")
    rss_ax.set_ylabel("RSS MB")
    rss_ax.set_title("RSS per replica", fontsize=10)
    rss_ax.set_ylim(bottom=0)
    rss_ax.grid(alpha=0.3)
    if rss_ax.get_legend_handles_labels()[0]:
        rss_ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.suptitle(f"Sharding, {run['config']} run, {run['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
