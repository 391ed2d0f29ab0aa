"""`kubectl-cloudinfer`: flags, the commands, and exit codes (docs/cli.md).

Every expected failure is one line on stderr and a documented exit code; an unexpected one is
one line too, with the traceback only under --debug.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cloudinfer.api.conditions import PAUSED_ANNOTATION
from cloudinfer.cloud.model import Cloud
from cloudinfer.kubectl import fleet, overrides, plans, service
from cloudinfer.kubectl.cluster import (
    ACCOUNTS,
    OPERATOR_NAME_LABEL,
    SERVICES,
    Cluster,
    connect,
)
from cloudinfer.kubectl.errors import ExitCode, PluginError
from cloudinfer.kubectl.operator_metrics import MetricsUnavailableError, OperatorMetrics, read
from cloudinfer.kubectl.planning import AccountFacts, ServicePlan, fingerprint, plan_service
from cloudinfer.kubectl.text import Painter, wants_colour
from cloudinfer.reconcile.planner import Plan

JsonDict = dict[str, Any]
PROG = "kubectl cloudinfer"


def _common(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """The flags every command takes (kubectl passes a plugin every flag after its name)."""
    g = parser.add_argument_group("cluster and output")
    g.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    if all_namespaces:
        g.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    g.add_argument("--context", help="the kubeconfig context to use")
    g.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text",
                   help="output format (default: text)")  # fmt: skip
    g.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="auto: only on a terminal and without NO_COLOR")  # fmt: skip
    g.add_argument("--metrics-url", type=_http_url, metavar="URL",
                   help="read the operator's metrics at URL (e.g. a port-forward's "
                   "http://127.0.0.1:9090/metrics), not through the apiserver's proxy")  # fmt: skip
    g.add_argument("--operator-namespace", metavar="NS",
                   help="where the operator runs (default: look in every namespace)")  # fmt: skip
    g.add_argument("--debug", action="store_true", help="show a traceback on internal errors")


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROG,
        description="The cloudinfer operator's view of your inference services.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 usage, 3 not found, 4 CRDs not "
        "installed, 5 apiserver unreachable or kubeconfig unusable, 6 access denied, "
        "7 no operator running (output still printed). See docs/cli.md.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, *, all_namespaces: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        _common(sub, all_namespaces=all_namespaces)
        return sub

    status = command("status", "accounts, budgets, services by phase and reason, what is not "
                     "Ready", all_namespaces=True)  # fmt: skip
    status.add_argument("--sample-seconds", type=float, default=1.0, metavar="S",
                        help="scrape the metrics twice, S seconds apart, for the budgets' use "
                        "(0: once, no use shown; default 1)")  # fmt: skip
    get = command("get", "one service: spec and observed, conditions, write ledger, next "
                  "transitions")  # fmt: skip
    get.add_argument("name")
    plan = command("plan", "what the operator would send now (ObserveOnly: what it would "
                   "send in Enforce)", all_namespaces=True)  # fmt: skip
    plan.add_argument("name", nargs="?", help="one service (default: all in the namespace)")
    wake = command("wake", "keep a service started (despite its stop windows) for a while")
    wake.add_argument("name")
    when = wake.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 2h, 90m, 1h30m")
    when.add_argument("--until", metavar="TIME", help="an RFC 3339 time, e.g. 2030-01-02T18:00:00Z")
    when.add_argument("--clear", action="store_true", help="end the wake override now")
    for name, help_ in (("pause", "stop the operator's cloud writes for a service"),
                        ("resume", "let the operator write to the cloud again")):  # fmt: skip
        command(name, help_).add_argument("name")
    for sub in (wake, commands.choices["pause"], commands.choices["resume"]):
        sub.add_argument(
            "--dry-run", action="store_true", help="say what would happen, change nothing"
        )
    command("why", "what a service's reasons mean and what to do").add_argument("name")
    return root


@dataclass
class Context:
    args: argparse.Namespace
    cluster: Cluster
    namespace: str
    now: datetime.datetime
    paint: Painter
    warnings: list[str]
    """One-line notes printed on stderr after the output (metrics unavailable, ...)."""
    no_operator: str | None = None


def _emit(ctx: Context, data: JsonDict, render: Callable[[], str]) -> None:
    if ctx.args.output == "json":
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
    elif ctx.args.output == "yaml":
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")
    else:
        print(render())


def _metrics(ctx: Context, sample_seconds: float = 0.0) -> OperatorMetrics | None:
    """The operator's metrics, or None with a note; also decides whether an operator runs."""
    try:
        return read(ctx.cluster, ctx.args.metrics_url, ctx.args.operator_namespace, sample_seconds)
    except MetricsUnavailableError as err:
        detail = str(err)
    try:
        pods = ctx.cluster.operator_pods(ctx.args.operator_namespace)
    except PluginError:
        pods = None  # cannot tell: only say the metrics are missing
    if pods is None or any(ready for _, ready in pods):
        ctx.warnings.append(f"operator metrics unavailable: {detail}")
    elif pods:
        names = ", ".join(name for name, _ in pods)
        ctx.no_operator = (
            f"no operator is running: its pods are not Ready ({names}) and its metrics are "
            f"unavailable ({detail}); status shown may be stale"
        )
    else:
        ctx.no_operator = (
            f"no operator is running: its metrics are unavailable ({detail}) and no pod has "
            f"the label {OPERATOR_NAME_LABEL}; install or start it (docs/install.md), or point "
            "--metrics-url at it; status shown may be stale"
        )
    return None


def _operator_block(metrics: OperatorMetrics | None, ctx: Context) -> JsonDict:
    return {
        "metrics": metrics.source if metrics else None,
        "running": False if ctx.no_operator else (True if metrics else None),
        "notes": [*ctx.warnings, *([ctx.no_operator] if ctx.no_operator else [])],
    }


def run_status(ctx: Context) -> None:
    namespace = None if ctx.args.all_namespaces else ctx.namespace
    services = ctx.cluster.list_all(SERVICES, namespace)
    accounts = ctx.cluster.list_all(ACCOUNTS, namespace)
    metrics = _metrics(ctx, max(0.0, ctx.args.sample_seconds))
    data = fleet.report(accounts, services, metrics)
    data["operator"] = _operator_block(metrics, ctx)
    _emit(ctx, data, lambda: fleet.text(data, ctx.paint))


def run_get(ctx: Context) -> None:
    obj = ctx.cluster.get(SERVICES, ctx.namespace, ctx.args.name)
    metrics = _metrics(ctx)
    data = service.get_report(obj)
    data["operator"] = _operator_block(metrics, ctx)
    _emit(ctx, data, lambda: service.get_text(data, ctx.paint, ctx.now))


def run_why(ctx: Context) -> None:
    obj = ctx.cluster.get(SERVICES, ctx.namespace, ctx.args.name)
    metrics = _metrics(ctx)
    data = service.why_report(obj)
    data["operator"] = _operator_block(metrics, ctx)
    _emit(ctx, data, lambda: service.why_text(data, ctx.paint))


class _Accounts:
    """Each CloudAccount's facts for the planner, read once per account."""

    def __init__(self, ctx: Context, metrics: OperatorMetrics | None) -> None:
        self.ctx, self.metrics = ctx, metrics
        self._cache: dict[tuple[str, str], AccountFacts] = {}

    def facts(self, obj: Mapping[str, Any]) -> AccountFacts:
        namespace = obj["metadata"]["namespace"]
        name = ((obj.get("spec") or {}).get("accountRef") or {}).get("name", "")
        key = (namespace, name)
        if key not in self._cache:
            self._cache[key] = self._read(namespace, name)
        return self._cache[key]

    def _read(self, namespace: str, name: str) -> AccountFacts:
        try:
            account = self.ctx.cluster.get(ACCOUNTS, namespace, name)
        except PluginError as err:
            if err.code is not ExitCode.NOT_FOUND:
                raise
            return AccountFacts(None, None, None)
        spec = account.get("spec") or {}
        secret = (spec.get("credentialsSecretRef") or {}).get("name")
        version = self.ctx.cluster.secret_version(namespace, secret) if secret else None
        last = (
            self.metrics.sample.last_observation.get(f"{namespace}/{name}")
            if self.metrics
            else None
        )
        return AccountFacts(
            Cloud(spec["provider"]) if spec.get("provider") in {c.value for c in Cloud} else None,
            fingerprint(account, version),
            datetime.datetime.fromtimestamp(last, datetime.UTC) if last else None,
        )


def _plans(
    ctx: Context, objs: Sequence[Mapping[str, Any]], metrics: OperatorMetrics | None
) -> list[ServicePlan]:
    accounts = _Accounts(ctx, metrics)
    return [plan_service(obj, accounts.facts(obj), ctx.now) for obj in objs]


def run_plan(ctx: Context) -> None:
    if ctx.args.name and ctx.args.all_namespaces:
        raise PluginError(ExitCode.USAGE, "give a NAME or -A, not both")
    if ctx.args.name:
        objs = [ctx.cluster.get(SERVICES, ctx.namespace, ctx.args.name)]
    else:
        objs = ctx.cluster.list_all(SERVICES, None if ctx.args.all_namespaces else ctx.namespace)
    metrics = _metrics(ctx)
    data = plans.report(_plans(ctx, objs, metrics))
    data["operator"] = _operator_block(metrics, ctx)
    _emit(ctx, data, lambda: plans.text(data, ctx.paint))


def _would_send(plan: Plan | None) -> str:
    if plan is None:
        return "it has no plan now"
    if plan.proposed:
        return "it would send now: " + "; ".join(f"{c.kind}: {c.reason}" for c in plan.proposed)
    return "it has nothing to send now"


def _override(ctx: Context, obj: Mapping[str, Any]) -> overrides.AnnotationChange:
    """The annotation change the command asks for, and what it will do."""
    command = ctx.args.command
    if command == "wake":
        until = None
        if ctx.args.duration:
            until = ctx.now + overrides.parse_duration(ctx.args.duration)
        elif ctx.args.until:
            until = overrides.parse_until(ctx.args.until, ctx.now)
        return overrides.wake(obj, until, ctx.now)
    if command == "pause":
        return overrides.pause(obj)
    meta = obj["metadata"]
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k != PAUSED_ANNOTATION}
    unpaused = {**obj, "metadata": {**meta, "annotations": kept}}
    metrics = _metrics(ctx)
    (the_plan,) = _plans(ctx, [unpaused], metrics)
    return overrides.resume(obj, _would_send(the_plan.plan))


def run_annotation(ctx: Context) -> None:
    obj = ctx.cluster.get(SERVICES, ctx.namespace, ctx.args.name)
    if ctx.args.command != "resume":
        _metrics(ctx)  # resume reads them for its plan
    change = _override(ctx, obj)
    if ctx.no_operator:  # the change is still valid: it takes effect when an operator runs
        ctx.warnings.append(
            ctx.no_operator.replace("; status shown may be stale", "")
            + "; the change takes effect when one runs"
        )
        ctx.no_operator = None
    name = f"InferenceService {ctx.namespace}/{ctx.args.name}"
    if not change.changes_anything:
        message = f"{name}: {change.effect}; nothing to change"
    elif change.new is None:
        message = f"{name}: removing {change.key}: {change.effect}"
    else:
        message = f"{name}: setting {change.key}={change.new}: {change.effect}"
    data: JsonDict = {
        "namespace": ctx.namespace, "name": ctx.args.name, "annotation": change.key,
        "from": change.old, "to": change.new, "effect": change.effect,
        "dryRun": bool(ctx.args.dry_run), "changed": False,
    }  # fmt: skip
    if ctx.args.output == "text":
        print(message + (" (dry run: nothing changed)" if ctx.args.dry_run else ""), flush=True)
    if change.changes_anything and not ctx.args.dry_run:
        ctx.cluster.annotate(ctx.namespace, ctx.args.name, change.key, change.new)
        data["changed"] = True
        if ctx.args.output == "text":
            print("done")
    if ctx.args.output != "text":
        _emit(ctx, data, lambda: "")


COMMANDS: dict[str, Callable[[Context], None]] = {
    "status": run_status, "get": run_get, "plan": run_plan, "why": run_why,
    "wake": run_annotation, "pause": run_annotation, "resume": run_annotation,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        connection = connect(args.kubeconfig, args.context)
        ctx = Context(
            args=args,
            cluster=Cluster(connection),
            namespace=args.namespace or connection.namespace,
            now=datetime.datetime.now(datetime.UTC),
            paint=Painter(args.output == "text" and wants_colour(args.color)),
            warnings=[],
        )
        COMMANDS[args.command](ctx)
    except PluginError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return int(err.code)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one line, never a traceback, unless --debug
        if args.debug:
            traceback.print_exc()
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(
            f"error: internal error ({type(err).__name__}: {first}); rerun with --debug and "
            "report it",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)
    sys.stdout.flush()
    for note in ctx.warnings:
        print(f"note: {note}", file=sys.stderr)
    if ctx.no_operator:
        print(f"error: {ctx.no_operator}", file=sys.stderr)
        return int(ExitCode.NO_OPERATOR)
    return int(ExitCode.OK)
