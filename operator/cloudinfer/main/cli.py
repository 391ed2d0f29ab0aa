"""`cloudinfer-operator`: run the operator (Kopf) with our settings."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import zlib
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from cloudinfer.main import allocator, handlers
from cloudinfer.main import apiserver as _apiserver  # noqa: F401 - registers Kopf's login
from cloudinfer.main.holds import HoldKeeper
from cloudinfer.main.kube import KubernetesAccess
from cloudinfer.main.settings import (
    DEFAULT_HEALTH_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_PEERING_NAME,
    Settings,
)
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.runtime import Runtime

AUTO_PRIORITY_RANGE = 10_000
TRIM_INTERVAL_SECONDS = 30.0


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CLOUDINFER_{name}", default)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cloudinfer-operator",
        description="Manage TI-ONE, ModelArts and Qianfan inference services declared as "
        "InferenceService resources. Every flag can also be set as CLOUDINFER_<FLAG> in the "
        "environment (e.g. CLOUDINFER_LOG_FORMAT=text; CLOUDINFER_NAMESPACES=a,b).",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        help="watch this namespace (repeatable); default: all namespaces",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch all namespaces (the default)"
    )
    p.add_argument(
        "--peering",
        default=_env("PEERING", DEFAULT_PEERING_NAME),
        help="Kopf peering name shared by replicas for HA; only the highest-priority replica "
        "acts (default: %(default)s)",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        default=_env("STANDALONE", "") == "true",
        help="disable peering (single replica)",
    )
    p.add_argument(
        "--priority",
        default=_env("PRIORITY", "auto"),
        help="peering priority of this replica: an integer, or 'auto' (default) for a stable "
        "number derived from the host (pod) name. Kopf pauses every peer that shares the "
        "highest priority, so replicas must differ; the highest one acts, the others wait",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=int(_env("HEALTH_PORT", str(DEFAULT_HEALTH_PORT))),
        help="serve the liveness probe at :PORT/healthz; 0 disables (default: %(default)s)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", str(DEFAULT_METRICS_PORT))),
        help="serve Prometheus metrics at :PORT/metrics; 0 disables (default: %(default)s)",
    )
    p.add_argument(
        "--log-format",
        choices=["json", "text"],
        default=_env("LOG_FORMAT", "json"),
        help="log line format (default: %(default)s)",
    )
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"],
        default=_env("LOG_LEVEL", "info"), help="minimum log level (default: %(default)s)",
    )  # fmt: skip
    return p


def _priority(value: str) -> int:
    if value == "auto":
        # Distinct per pod with overwhelming likelihood, and stable across restarts.
        return zlib.crc32(socket.gethostname().encode()) % AUTO_PRIORITY_RANGE + 1
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"--priority must be an integer or 'auto', got {value!r}") from None


def settings_from(argv: Sequence[str] | None) -> Settings:
    args = parser().parse_args(argv)
    env_namespaces = [n for n in _env("NAMESPACES", "").split(",") if n]
    namespaces = () if args.all_namespaces else tuple(args.namespaces or env_namespaces)
    return Settings(
        namespaces=namespaces,
        peering_name=args.peering,
        standalone=args.standalone,
        priority=_priority(args.priority),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        log_level=args.log_level,
    )


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
            standalone=settings.standalone or None,
            priority=None if settings.standalone else settings.priority,
            peering_name=None if settings.standalone else settings.peering_name,
            liveness_endpoint=liveness,
        )
    finally:
        trimmer.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    allocator.tune()  # before any thread starts
    settings = settings_from(argv)
    kopf.configure(
        debug=settings.log_level == "debug",
        verbose=settings.log_level in ("debug", "info"),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s",
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    metrics = Metrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
    handlers.State.settings = settings
    kube = KubernetesAccess()
    handlers.State.events = kube.events
    handlers.State.runtime = Runtime(kube, metrics)
    handlers.State.holds = HoldKeeper(kube)
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
