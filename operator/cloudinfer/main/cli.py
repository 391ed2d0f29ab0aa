"""`cloudinfer-operator`: run the operator (Kopf) with our settings."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Final, get_origin

import kopf
from prometheus_client import start_http_server
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cloudinfer import __version__
from cloudinfer.main import allocator, handlers
from cloudinfer.main import apiserver as _apiserver  # noqa: F401 - registers Kopf's login
from cloudinfer.main.events import EventPoster
from cloudinfer.main.holds import HoldKeeper
from cloudinfer.main.inventory import Inventory
from cloudinfer.main.kube import KubernetesAccess
from cloudinfer.main.leases import LeaseClient
from cloudinfer.main.services import ServiceTasks
from cloudinfer.main.settings import Settings, shown_default
from cloudinfer.main.sharding import Sharder, default_identity, lease_namespace
from cloudinfer.reconcile.kube_access import SERVICES_PLURAL
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.runtime import Runtime

PROG = "cloudinfer-operator"
TRIM_INTERVAL_SECONDS = 30.0
USAGE_ERROR = 2  # argparse's exit code for a bad command line


def _help(name: str) -> str:
    field = Settings.model_fields[name]
    text = f"{field.description} [env {Settings.env_var(name)}; default: {shown_default(name)}]"
    return text.replace("%", "%%")


def parser() -> argparse.ArgumentParser:
    """One flag per Settings field; a flag left out is absent from the result, so the
    environment and then the default apply."""
    p = argparse.ArgumentParser(
        prog=PROG,
        argument_default=argparse.SUPPRESS,
        description="Manage TI-ONE, ModelArts and Qianfan inference services declared as "
        "InferenceService resources. Every flag can also be set in the environment as the "
        "variable shown with it (e.g. CLOUDINFER_LOG_FORMAT=text, CLOUDINFER_NAMESPACES=a,b); "
        "a flag on the command line wins over the environment, which wins over the default.",
    )
    for name, field in Settings.model_fields.items():
        option, metavar = Settings.option(name), Settings.metavar(name)
        target: argparse._ActionsContainer = p
        if option.reset_flags:
            target = p.add_mutually_exclusive_group()
        if field.annotation is bool:
            target.add_argument(*option.flags, dest=name, action="store_true", help=_help(name))
        elif get_origin(field.annotation) is tuple:
            target.add_argument(
                *option.flags, dest=name, action="append", metavar=metavar, help=_help(name)
            )
        else:
            target.add_argument(*option.flags, dest=name, metavar=metavar, help=_help(name))
        if option.reset_flags:
            target.add_argument(
                *option.reset_flags, dest=name, action="store_const", const=field.default,
                help=f"ignore {Settings.env_var(name)} and use the default: {shown_default(name)}",
            )  # fmt: skip
    return p


def _problem(error: ErrorDetails, given: Mapping[str, object]) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    if name not in Settings.model_fields:
        return error["msg"]
    source = "flag" if name in given else "environment"
    why = str(error.get("ctx", {}).get("error", "")) or error["msg"]
    return (
        f"{Settings.option(name).flag} (env {Settings.env_var(name)}): "
        f"{error['input']!r} from the {source} is not valid: {why}"
    )


def settings_from(argv: Sequence[str] | None) -> Settings:
    """Flags, then CLOUDINFER_* variables, then defaults. A bad value ends the process with one
    line naming the flag and the variable, and exit code 2, as argparse does."""
    given = vars(parser().parse_args(argv))
    try:
        return Settings(**given)
    except ValidationError as err:
        problems = "; ".join(_problem(e, given) for e in err.errors(include_url=False))
        parser().exit(USAGE_ERROR, f"{PROG}: error: {problems}\n")


def user_agent(sharder: Sharder | None) -> str:
    """Sent with every cloud call; names the replica in sharding mode (no secret in it)."""
    agent = f"cloudinfer-operator/{__version__}"
    return agent if sharder is None else f"{agent} replica/{sharder.identity}"


async def _release_free_memory_periodically() -> None:
    while True:
        await asyncio.sleep(TRIM_INTERVAL_SECONDS)
        allocator.release_free_memory()


async def _run(settings: Settings) -> None:
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    trimmer = asyncio.create_task(_release_free_memory_periodically())
    try:
        await kopf.operator(
            clusterwide=settings.clusterwide,
            namespaces=settings.namespaces,
            standalone=None if settings.peered else True,
            priority=settings.priority if settings.peered else None,
            peering_name=settings.peering if settings.peered else None,
            liveness_endpoint=liveness,
        )
    finally:
        trimmer.cancel()


QUIET_HANDLERS: Final = frozenset(
    f"Handler '{name}' succeeded." for name in ("service_event", "account_changed")
)


def _quiet_event_handlers(record: logging.LogRecord) -> bool:
    """Drops Kopf's "succeeded" line of the event handlers: one per watch event (~5 per
    service while converging), none of them news."""
    return record.getMessage() not in QUIET_HANDLERS


def configure_logging(settings: Settings) -> None:
    kopf.configure(
        debug=settings.log_level == "debug",
        verbose=settings.log_level in ("debug", "info"),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s",
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    logging.getLogger("kopf.objects").addFilter(_quiet_event_handlers)
    # httpx logs every request at info: a second line beside each "cloud write" (which has
    # the request ID) and one per list page, most of the log and of its CPU at scale.
    logging.getLogger("httpx").setLevel(
        logging.NOTSET if settings.log_level == "debug" else logging.WARNING
    )


def main(argv: Sequence[str] | None = None) -> int:
    allocator.tune()  # before any thread starts
    settings = settings_from(argv)
    configure_logging(settings)
    metrics = Metrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    handlers.State.settings = settings
    kube = KubernetesAccess(events=EventPoster(count_dropped=metrics.count_dropped_events))
    handlers.State.events = kube.events
    handlers.State.kube = kube
    sharder = None
    if settings.shard:
        leases = LeaseClient(lease_namespace(settings.shard_namespace))
        # Installs watching other namespaces must not share Leases: they see other accounts.
        group = "/".join((settings.peering, *sorted(settings.namespaces)))
        sharder = Sharder(leases, metrics, group=group, identity=default_identity())
    handlers.State.sharding = sharder
    handlers.State.runtime = Runtime(
        kube,
        metrics,
        allow_list=settings.endpoint_allow_list,
        fence=sharder,
        user_agent=user_agent(sharder),
    )
    if sharder is not None:
        sharder.busy = handlers.State.runtime.executor.busy
    handlers.State.holds = (
        HoldKeeper(kube) if sharder is None else HoldKeeper(kube, keeps=sharder.may_act)
    )
    if settings.peered:
        handlers.deliver_service_events()
    handlers.State.inventory = Inventory(
        kube, handlers.Registries(), settings.namespaces,
        watched=() if settings.peered else (SERVICES_PLURAL,),
    )  # fmt: skip
    handlers.State.services = (
        ServiceTasks(handlers.State.runtime, kube, handlers.deletion)
        if sharder is None
        else ServiceTasks(
            handlers.State.runtime,
            kube,
            handlers.deletion,
            may_act=sharder.may_act,
            held_event=sharder.held_event,
        )
    )
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
