"""How fast one simulator process answers list pages of 100 with 10,000 services seeded.

Not a timed test: it prints measured figures. Run: .venv/bin/python bench/bench_sim.py
Each cloud is served by its own uvicorn thread on loopback and queried over real HTTP
(httpx, keep-alive) through the token-bucket-free path (rate limits lifted for the run).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from cloudsim.server import serve_in_thread

# ruff: noqa: S106 - the keys below are simulator fixtures, not secrets

SERVICES = 10_000
PAGE = 100
PAGES = 100  # pages fetched per cloud (the whole 10,000 once)
TARGET_MS = 10.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(name: str, fetch: Callable[[int], Any], count: Callable[[Any], int] = int) -> None:
    """Time `fetch` per page; `count` (untimed) turns its result into the item count, so
    raw fetchers measure the simulator's answer (last byte received), not client parsing."""
    fetch(0)  # warm the connection
    samples: list[float] = []
    total = 0
    for page in range(PAGES):
        started = time.perf_counter()
        result = fetch(page)
        samples.append((time.perf_counter() - started) * 1000)
        total += count(result)
    print(
        f"{name:16s} {SERVICES} services, {PAGES} pages of {PAGE}: items={total} "
        f"median={statistics.median(samples):.2f} ms p95={_percentile(samples, 0.95):.2f} ms "
        f"max={max(samples):.2f} ms target<{TARGET_MS:.0f} ms"
    )


def bench_tencent() -> None:
    from tencentcloud.common.common_client import CommonClient  # noqa: PLC0415
    from tencentcloud.common.credential import Credential  # noqa: PLC0415
    from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: PLC0415
    from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: PLC0415

    with serve_in_thread("tencent", speed=0) as sim:
        control = sim.control
        control.add_account(name="b", secret_id="AKIDbench", secret_key="benchkey")
        started = time.perf_counter()
        control.add_services(SERVICES, account="b", name="bench")
        print(f"tencent  seeded {SERVICES} services in {time.perf_counter() - started:.2f} s")
        control.set_rate_limits(DescribeModelServiceGroups=0)
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=sim.endpoint))
        client = CommonClient(
            "tione", "2021-11-11", Credential("AKIDbench", "benchkey"), "ap-guangzhou", profile
        )

        def fetch(page: int) -> int:
            body = {"Offset": page * PAGE, "Limit": PAGE}
            answer = client.call_json("DescribeModelServiceGroups", body)
            return len(answer["Response"]["ServiceGroups"])

        # The SDK client's figure includes its own parsing of ~300 KB pages (client cost).
        _measure("tencent (SDK)", fetch)

        from cloudsim.signing import tc3  # noqa: PLC0415 - signing only for the raw client

        with httpx.Client(base_url=sim.base_url, trust_env=False) as http:

            def fetch_raw(page: int) -> int:
                body = json.dumps({"Offset": page * PAGE, "Limit": PAGE}).encode()
                ts = int(time.time())
                headers = {"content-type": "application/json", "host": sim.endpoint}
                canonical = tc3.canonical_request(
                    "POST", "", headers, ["content-type", "host"], body
                )
                date = time.strftime("%Y-%m-%d", time.gmtime(ts))
                sig = tc3.signature(
                    "benchkey", date, "tione", tc3.string_to_sign(ts, "tione", canonical)
                )
                headers |= {
                    "authorization": "TC3-HMAC-SHA256 "
                    f"Credential=AKIDbench/{date}/tione/tc3_request, "
                    f"SignedHeaders=content-type;host, Signature={sig}",
                    "x-tc-action": "DescribeModelServiceGroups",
                    "x-tc-version": "2021-11-11",
                    "x-tc-region": "ap-guangzhou",
                    "x-tc-timestamp": str(ts),
                }
                return http.post("/", content=body, headers=headers).content

            _measure(
                "tencent (httpx)",
                fetch_raw,
                lambda raw: len(json.loads(raw)["Response"]["ServiceGroups"]),
            )


def bench_huawei() -> None:
    with serve_in_thread("huawei", speed=0) as sim:
        control = sim.control
        control.add_account(name="b", ak="HWBENCH", sk="hwbench", projects=["p"], token="tok")
        control.add_services(SERVICES, account="b", name="bench")
        control.set_rate_limits(ListServices=0)
        with httpx.Client(
            base_url=sim.base_url, headers={"X-Auth-Token": "tok"}, trust_env=False
        ) as http:

            def fetch(page: int) -> bytes:
                params = {"offset": page, "limit": PAGE}
                return http.get("/v1/p/services", params=params).content

            _measure("huawei", fetch, lambda raw: len(json.loads(raw)["services"]))


def bench_baidu() -> None:
    with serve_in_thread("baidu", speed=0) as sim:
        control = sim.control
        control.add_account(
            name="b", ak="bdbench", sk="bdbench", compute_units={"cu": {"total_units": 1}}
        )
        control.add_services(SERVICES, account="b", name="bench", units={"cu": 0})
        control.set_rate_limits(DescribeServices=0)
        # Walk once with the simulator's own core to learn the markers, then time the HTTP pages.
        with sim.sim.lock:
            ordered = [s.service_id for s in sim.sim.store.by_id.values()]
        markers = [ordered[i] for i in range(0, SERVICES, PAGE)]
        from baidubce.auth import bce_v1_signer  # noqa: PLC0415
        from baidubce.auth.bce_credentials import BceCredentials  # noqa: PLC0415
        from baidubce.utils import get_canonical_time  # noqa: PLC0415

        with httpx.Client(base_url=sim.base_url, trust_env=False) as http:

            def fetch(page: int) -> bytes:
                ts = int(time.time())
                headers = {
                    "host": sim.endpoint,
                    "content-type": "application/json",
                    "x-bce-date": get_canonical_time(ts).decode(),
                }
                headers["authorization"] = bce_v1_signer.sign(
                    BceCredentials("bdbench", "bdbench"),
                    b"POST",
                    b"/v2/service",
                    {k.encode(): v for k, v in headers.items()},
                    {b"Action": "DescribeServices"},
                    timestamp=ts,
                    expiration_in_seconds=300,
                    headers_to_sign=[b"host", b"content-type", b"x-bce-date"],
                ).decode()
                body = {"maxKeys": PAGE, "marker": markers[page]}
                answer = http.post(
                    "/v2/service", params={"Action": "DescribeServices"}, headers=headers, json=body
                )
                return answer.content

            _measure("baidu", fetch, lambda raw: len(json.loads(raw)["result"]["serviceList"]))


def main() -> None:
    bench_tencent()
    bench_huawei()
    bench_baidu()


if __name__ == "__main__":
    main()
