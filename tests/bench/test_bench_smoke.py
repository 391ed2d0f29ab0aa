"""`make bench`'s smallest configuration (N = 10) end to end, so the benchmark code can't rot.

Runs bench/run.py as `make bench` does, with `--sizes 10` (its own control plane, simulator
and operator) and checks that the result file has every scenario's figures with sane values.
No timing is asserted: the machine may be busy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import find_bin_dir
from controlplane.launcher import ControlPlaneError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    try:
        bin_dir = find_bin_dir()
    except ControlPlaneError as err:
        pytest.fail(str(err))  # a missing tool is a failure with directions, never a skip
    out = tmp_path_factory.mktemp("bench-results")
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--config",
            "quick",
            "--sizes",
            "10",
            "--out",
            str(out),
        ],
        env={**os.environ, "CLOUDINFER_K8S_BIN": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, f"bench/run.py failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    files = sorted(out.glob("*-quick.json"))
    assert len(files) == 1, list(out.iterdir())
    return json.loads(files[0].read_text()), files[0], run.stdout


def test_every_scenario_has_sane_figures(smoke_result: tuple[dict, Path, str]) -> None:
    result, _, _ = smoke_result
    assert result["config"] == "quick"
    assert list(result["sizes"]) == ["10"]
    r = result["sizes"]["10"]

    conv = r["convergence"]
    assert conv["writes_needed"] == {
        "ModifyModelService": 10,
        "ModifyModelServicePartialConfig": 10,
    }
    assert conv["writes_made_total"] >= conv["writes_needed_total"] == 20
    # The physical floor: 10 SCALEs and 10 PartialConfigs (both fields in one) at 20/s each.
    assert conv["floor_seconds"] == pytest.approx(0.5)
    assert conv["floor_seconds_two_partial_calls"] == pytest.approx(1.0)
    assert conv["services_written_more_than_needed"] == 0
    assert conv["ratio_to_floor"] > 0
    assert conv["throttled_total"] == 0
    assert conv["ready_series"][-1][1] == 10

    steady = r["steady"]
    assert steady["polls"] >= 1
    assert 0 < steady["reads_per_poll"] <= steady["reads_per_poll_target"] == 1
    assert steady["baseline_reads_per_poll"] == 10
    assert steady["kube_writes_per_minute"] == 0
    assert steady["cloud_writes"] == 0
    assert steady["throttled_operator"] == 0

    edits = r["edits"]
    assert edits["edits"] >= 50
    # An edit whose write never showed up within a minute is reported, with the resource's
    # conditions, rather than failing here: on a loaded machine that is a figure, not a bug.
    assert edits["count"] + edits["timeouts"] == edits["edits"], edits["timeout_details"]
    assert edits["count"] > 0
    assert 0 < edits["p50"] <= edits["p99"]
    assert abs(edits["clock_offset_seconds"]["before"]) < 1
    assert edits["throttled_total"] == 0

    drift = r["drift"]
    assert drift["missed"] == 0
    assert drift["detect"]["count"] == drift["correct"]["count"] == drift["trials"] == 4
    assert 0 < drift["correct"]["p50"] <= drift["correct"]["p99"]
    assert drift["throttled_total"] == 0

    foot = r["footprint"]
    assert foot["rss_mb"] > 10
    assert foot["cpu_seconds_total"] > 0


def test_table_and_plot_are_written(smoke_result: tuple[dict, Path, str]) -> None:
    result, path, stdout = smoke_result
    table = path.with_suffix(".md").read_text()
    assert "cold convergence / physical floor" in table
    assert "| N=10 |" in table
    assert table.strip() in stdout
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {v["figure"] for v in result["verdicts"]} >= {
        "throttling errors",
        "steady cloud reads per poll",
        "steady Kubernetes writes",
    }
