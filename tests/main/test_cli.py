"""The CLI: every flag documented, settings parsed, peering priorities distinct by default."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudinfer.main.cli import _priority, parser, settings_from

FLAGS = ("--namespace", "--all-namespaces", "--peering", "--standalone", "--priority",
         "--health-port", "--metrics-port", "--log-format", "--log-level")  # fmt: skip


def test_help_documents_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloudinfer", "--help"], capture_output=True, text=True, check=True
    )
    for flag in FLAGS:
        assert flag in result.stdout
    assert len(parser()._actions) == len(FLAGS) + 1  # plus -h: a new flag needs a test here


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        pytest.param([], "namespaces", (), id="all-namespaces-by-default"),
        pytest.param(["-n", "a", "-n", "b"], "namespaces", ("a", "b"), id="repeatable-namespace"),
        pytest.param(["--standalone"], "standalone", True, id="standalone"),
        pytest.param(["--priority", "7"], "priority", 7, id="explicit-priority"),
        pytest.param(["--priority", "auto"], "priority", _priority("auto"), id="auto-priority"),
        pytest.param([], "priority", _priority("auto"), id="auto-priority-by-default"),
        pytest.param(["--metrics-port", "0"], "metrics_port", 0, id="metrics-off"),
        pytest.param(["--log-format", "text"], "log_format", "text", id="text-logs"),
    ],
)
def test_settings_from_flags(argv: list[str], field: str, expected: object) -> None:
    assert getattr(settings_from(argv), field) == expected


def test_auto_priority_is_stable_and_in_range() -> None:
    first, second = _priority("auto"), _priority("auto")
    assert first == second
    assert 1 <= first <= 10_000


def test_bad_priority_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="integer or 'auto'"):
        _priority("high")
