"""The chart's alert rules, as `helm template` renders them, checked and unit-tested with
promtool: each alert fires on the series of tests/observability/alerts_test.yaml meant to
fire it and stays quiet on the others."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from observability_support import (
    JOB,
    OBSERVABILITY_DOC,
    alert_rules,
    prometheus_bin_dir,
    quiet_alerts,
    write_rules,
)

HERE = Path(__file__).resolve().parent


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(prometheus_bin_dir() / "promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rendered_rules_pass_promtool_check_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    result = _promtool("check", "rules", "--lint=all", "--lint-fatal", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    result = _promtool("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    suite = yaml.safe_load((HERE / "alerts_test.yaml").read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in suite["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fired == set(alert_rules()), "an alert no series fires"
    assert quiet == set(alert_rules()), "an alert with no series that must not fire it"


def test_the_operator_down_alert_watches_the_job_a_service_monitor_gives() -> None:
    assert f'up{{job="{JOB}"}}' in alert_rules()["CloudinferOperatorDown"]


def test_every_alert_has_a_runbook_section_and_a_steady_state_entry() -> None:
    doc = OBSERVABILITY_DOC.read_text()
    headings = set(re.findall(r"^### (\w+)$", doc, re.MULTILINE))
    table = doc.split("## Alerts", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| \[`(\w+)`\]", table, re.MULTILINE))
    for alert in alert_rules():
        assert alert in headings, f"docs/observability.md has no runbook section for {alert}"
        assert alert in listed, f"docs/observability.md's alert table lacks {alert}"
    assert quiet_alerts() <= set(alert_rules())
