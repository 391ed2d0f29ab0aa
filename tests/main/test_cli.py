"""The CLI: every flag documented, flags over environment over defaults, bad values rejected in
one line, peering priorities distinct by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudinfer.cloud.allowlist import DEFAULT_PATTERNS
from cloudinfer.main.cli import parser, settings_from
from cloudinfer.main.settings import ENV_PREFIX, Settings, auto_priority, shown_default
from cloudinfer.main.sharding import default_identity

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"

FLAGS = ("-n", "--namespace", "-A", "--all-namespaces", "--peering", "--standalone", "--priority",
         "--shard", "--shard-namespace", "--health-port", "--metrics-port",
         "--allowed-endpoint-host", "--log-format",
         "--log-level")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: a developer's own CLOUDINFER_* must not change the results."""
    for name in Settings.model_fields:
        monkeypatch.delenv(Settings.env_var(name), raising=False)


def run_cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return subprocess.run(
        [sys.executable, "-m", "cloudinfer", *argv],
        capture_output=True, text=True, check=False, env={**clean, **env}, timeout=60,
    )  # fmt: skip


def test_help_documents_every_flag_with_its_variable_and_default() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere
    for flag in FLAGS:
        assert flag in text
    for name in Settings.model_fields:
        assert f"[env {Settings.env_var(name)}; default: " in text, name
    assert "default: auto]" in text
    assert "default: 9090]" in text
    assert "wins over the environment, which wins over the default" in text
    options = [o for action in parser()._actions for o in action.option_strings]
    assert sorted(options) == sorted((*FLAGS, "-h", "--help")), "a new flag needs a test here"


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        pytest.param([], "namespaces", (), id="all-namespaces-by-default"),
        pytest.param(["-n", "a", "-n", "b"], "namespaces", ("a", "b"), id="repeatable-namespace"),
        pytest.param(["--namespace=a", "-n", "t-*"], "namespaces", ("a", "t-*"), id="glob"),
        pytest.param(["-A"], "namespaces", (), id="all-namespaces"),
        pytest.param(["--peering", "p"], "peering", "p", id="peering"),
        pytest.param(["--standalone"], "standalone", True, id="standalone"),
        pytest.param([], "standalone", False, id="peering-by-default"),
        pytest.param(["--shard"], "shard", True, id="shard"),
        pytest.param([], "shard", False, id="no-sharding-by-default"),
        pytest.param(["--shard-namespace", "ops"], "shard_namespace", "ops", id="lease-namespace"),
        pytest.param(["--priority", "7"], "priority", 7, id="explicit-priority"),
        pytest.param(["--priority=-10"], "priority", -10, id="negative-priority"),
        pytest.param(["--priority", "auto"], "priority", auto_priority(), id="auto-priority"),
        pytest.param([], "priority", auto_priority(), id="auto-priority-by-default"),
        pytest.param(["--health-port=0"], "health_port", 0, id="health-off"),
        pytest.param(["--metrics-port", "0"], "metrics_port", 0, id="metrics-off"),
        pytest.param([], "metrics_port", 9090, id="metrics-default"),
        pytest.param(["--log-format", "text"], "log_format", "text", id="text-logs"),
        pytest.param(["--log-level", "debug"], "log_level", "debug", id="debug-logs"),
        pytest.param([], "allowed_endpoint_hosts", DEFAULT_PATTERNS, id="public-clouds"),
        pytest.param(
            ["--allowed-endpoint-host", "127.0.0.1", "--allowed-endpoint-host=*.svc"],
            "allowed_endpoint_hosts",
            ("127.0.0.1", "*.svc"),
            id="allow-list-replaced",
        ),
    ],
)
def test_settings_from_flags(argv: list[str], field: str, expected: object) -> None:
    assert getattr(settings_from(argv), field) == expected


@pytest.mark.parametrize(
    ("env", "argv", "field", "expected"),
    [
        pytest.param({"NAMESPACES": "a,b"}, [], "namespaces", ("a", "b"), id="env-list"),
        pytest.param({"NAMESPACES": " a , ,b,"}, [], "namespaces", ("a", "b"), id="env-spaces"),
        pytest.param({"NAMESPACES": ""}, [], "namespaces", (), id="empty-env-is-unset"),
        pytest.param({"NAMESPACES": "a,b"}, ["-n", "c"], "namespaces", ("c",), id="flag-wins"),
        pytest.param({"NAMESPACES": "a,b"}, ["-A"], "namespaces", (), id="all-namespaces-wins"),
        pytest.param({"STANDALONE": "true"}, [], "standalone", True, id="env-standalone"),
        pytest.param({"STANDALONE": "false"}, [], "standalone", False, id="env-peering"),
        pytest.param({"STANDALONE": "false"}, ["--standalone"], "standalone", True, id="flag-on"),
        pytest.param({"PRIORITY": "auto"}, [], "priority", auto_priority(), id="env-auto"),
        pytest.param({"PRIORITY": "3"}, ["--priority=4"], "priority", 4, id="flag-priority"),
        pytest.param({"METRICS_PORT": "0"}, [], "metrics_port", 0, id="env-metrics-off"),
        pytest.param({"LOG_LEVEL": "error"}, [], "log_level", "error", id="env-log-level"),
        pytest.param(
            {"LOG_LEVEL": "error"}, ["--log-level=debug"], "log_level", "debug", id="flag"
        ),
        pytest.param({"PEERING": "p"}, [], "peering", "p", id="env-peering-name"),
        pytest.param(
            {"ALLOWED_ENDPOINT_HOSTS": "127.0.0.1, [::1]:8443"},
            [],
            "allowed_endpoint_hosts",
            ("127.0.0.1", "[::1]:8443"),
            id="env-allow-list",
        ),
    ],
)
def test_flag_over_environment_over_default(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], field: str,
    expected: object,
) -> None:  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(ENV_PREFIX + name, value)
    assert getattr(settings_from(argv), field) == expected


@pytest.mark.parametrize(
    ("argv", "env", "flag", "variable", "value"),
    [
        pytest.param([], {"CLOUDINFER_METRICS_PORT": "abc"}, "--metrics-port",
                     "CLOUDINFER_METRICS_PORT", "'abc' from the environment", id="env-port"),
        pytest.param(["--log-level", "loud"], {}, "--log-level", "CLOUDINFER_LOG_LEVEL",
                     "'loud' from the flag", id="flag-level"),
        pytest.param(["--priority", "high"], {}, "--priority", "CLOUDINFER_PRIORITY",
                     "an integer or 'auto'", id="flag-priority"),
        pytest.param(["--health-port=70000"], {}, "--health-port", "CLOUDINFER_HEALTH_PORT",
                     "'70000' from the flag", id="port-range"),
        pytest.param([], {"CLOUDINFER_STANDALONE": "maybe"}, "--standalone",
                     "CLOUDINFER_STANDALONE", "'maybe'", id="env-bool"),
        pytest.param([], {"CLOUDINFER_LOG_FORMAT": "xml"}, "--log-format",
                     "CLOUDINFER_LOG_FORMAT", "'xml'", id="env-format"),
        pytest.param(["--allowed-endpoint-host", "http://x.example"], {},
                     "--allowed-endpoint-host", "CLOUDINFER_ALLOWED_ENDPOINT_HOSTS",
                     "is not a host name", id="allow-list-url"),
        pytest.param(["--allowed-endpoint-host", "x.example:99999"], {},
                     "--allowed-endpoint-host", "CLOUDINFER_ALLOWED_ENDPOINT_HOSTS",
                     "the port must be a number", id="allow-list-port"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_flag_and_variable(
    argv: list[str], env: dict[str, str], flag: str, variable: str, value: str
) -> None:
    result = run_cli(*argv, **env)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("cloudinfer-operator: error: ")
    assert flag in line
    assert variable in line
    assert value in line
    assert "Traceback" not in result.stderr


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as exit_:
        settings_from(["-n", "a", "-A"])
    assert exit_.value.code == 2


def test_auto_priority_is_stable_and_in_range() -> None:
    first, second = auto_priority(), auto_priority()
    assert first == second
    assert 1 <= first <= 10_000


def test_auto_priority_follows_the_pod_name_not_the_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pods on the node's network share the node's host name; the chart gives each its own
    name in POD_ID, and two pods must not share a priority (Kopf would pause both)."""
    monkeypatch.setenv("POD_ID", "cloudinfer-operator-7d9f-abcde")
    first = auto_priority()
    monkeypatch.setenv("POD_ID", "cloudinfer-operator-7d9f-fghij")
    assert auto_priority() != first
    assert default_identity().startswith("cloudinfer-operator-7d9f-fghij-")


def test_unrelated_cloudinfer_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests, bench and the demo set CLOUDINFER_KUBECONFIG and friends in the same environment."""
    monkeypatch.setenv("CLOUDINFER_KUBECONFIG", "/nowhere")
    monkeypatch.setenv("CLOUDINFER_SOAK", "1")
    assert settings_from([]) == settings_from(["-A"])


def flags_table_row(name: str) -> str:
    option, field = Settings.option(name), Settings.model_fields[name]
    flags = ", ".join(f"`{flag}`" for flag in (*option.flags, *option.reset_flags))
    chart = f"`{option.chart}: false`" if option.chart_negates else f"`{option.chart}`"
    return (
        f"| {flags} | `{Settings.env_var(name)}` | {chart} | `{shown_default(name)}` "
        f"| {field.description} |"
    )


def test_install_doc_lists_every_setting_as_the_model_has_it() -> None:
    text = INSTALL_DOC.read_text()
    rows = [flags_table_row(name) for name in Settings.model_fields]
    assert "\n".join(rows) in text, "docs/install.md's flags table, regenerated:\n" + "\n".join(
        rows
    )


def test_sharding_runs_every_replica_active_without_peering() -> None:
    assert settings_from([]).peered
    assert not settings_from(["--shard"]).peered
    assert not settings_from(["--standalone"]).peered


@pytest.mark.parametrize(
    ("level", "logged"), [("info", False), ("warning", False), ("debug", True)]
)
def test_the_http_clients_line_per_request_is_logged_at_debug_only(
    level: str, logged: bool
) -> None:
    """httpx logs each request at info; at scale that doubled the log beside our own "cloud
    write" line. Run in a process of its own: the logging set-up is global."""
    script = (
        "import logging, sys\n"
        "from cloudinfer.main.cli import configure_logging, settings_from\n"
        f"configure_logging(settings_from(['--log-format', 'text', '--log-level', {level!r}]))\n"
        "logging.getLogger('httpx').info('HTTP Request: POST https://x/ 200')\n"
        "logging.getLogger('cloudinfer').warning('cloud write: still here')\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=True, env=clean, timeout=60,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert "cloud write: still here" in output
    assert ("HTTP Request:" in output) is logged
