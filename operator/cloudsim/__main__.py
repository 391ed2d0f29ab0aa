"""`cloudsim serve`: run the TI-ONE, ModelArts and Qianfan simulators on loopback."""

from __future__ import annotations

import argparse
import sys

from cloudsim.demo import DEMO_ACCOUNTS, seed_demo
from cloudsim.server import CLOUDS, LOOPBACK, bind_all, make_sim, serve_sockets

DEFAULT_PORT = 8600
CLOUD_ORDER = ("tencent", "huawei", "baidu")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudsim",
        description="Faithful local simulators of Tencent TI-ONE, Huawei ModelArts and Baidu "
        "Qianfan (see docs/simulators.md). Each serves the cloud's API and a control API "
        "under /_sim/.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve one cloud or all three",
        description="Serve simulators until interrupted (Ctrl-C).",
    )
    serve.add_argument(
        "--cloud",
        choices=[*CLOUD_ORDER, "all"],
        default="all",
        help="which cloud to simulate; 'all' serves each cloud on its own port (default: all)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the cloud; with --cloud all, tencent gets PORT, huawei PORT+1 and baidu "
        f"PORT+2; 0 picks free ports (default: {DEFAULT_PORT})",
    )
    serve.add_argument(
        "--host", default=LOOPBACK, help=f"address to listen on (default: {LOOPBACK})"
    )
    serve.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: ids, request ids and probabilistic faults repeat with it (default: 0)",
    )
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="virtual clock speed: 60 makes a real second a virtual minute; 0 freezes the "
        "clock so it moves only via POST /_sim/clock/advance (default: 1)",
    )
    serve.add_argument(
        "--demo-services",
        type=int,
        default=3,
        metavar="N",
        help="seed a 'demo' account (keys printed at start) with N running services per "
        "cloud (default: 3)",
    )
    serve.add_argument(
        "--no-demo",
        action="store_true",
        help="start empty: no demo account and no services (seed them via the control API)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level (default: warning)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    clouds = list(CLOUD_ORDER) if args.cloud == "all" else [args.cloud]
    if args.port == 0:
        ports = dict.fromkeys(clouds, 0)
    else:
        ports = {cloud: args.port + i for i, cloud in enumerate(clouds)}
    sims = {cloud: make_sim(cloud, seed=args.seed, speed=args.speed) for cloud in clouds}
    if not args.no_demo:
        for sim in sims.values():
            seed_demo(sim, args.demo_services)
    try:
        sockets = bind_all(ports, args.host)
    except OSError as err:
        print(f"cloudsim: cannot bind: {err}", file=sys.stderr)
        return 1
    for cloud in clouds:
        port = sockets[cloud].getsockname()[1]
        print(f"{cloud} http://{args.host}:{port}", flush=True)
    if not args.no_demo:
        for cloud in clouds:
            keys = {k: v for k, v in DEMO_ACCOUNTS[cloud].items() if k != "name"}
            print(f"# {cloud} demo account: {keys}", flush=True)
    assert set(clouds) <= set(CLOUDS)
    serve_sockets(sims, sockets, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
