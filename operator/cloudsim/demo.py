"""The demo accounts `cloudsim serve` seeds, so the simulators are usable out of the box.

These keys are fixtures, not secrets: they only open the local simulators.
"""

from __future__ import annotations

from typing import Any

from cloudsim.core import CloudSim

DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "tencent": {
        "name": "demo",
        "secret_id": "AKIDsimdemo00000000000000000000000000",
        "secret_key": "simdemoSecretKey0000000000000000",
        "regions": ["ap-guangzhou"],
    },
    "huawei": {
        "name": "demo",
        "ak": "SIMDEMOAK00000000000",
        "sk": "simdemoSK000000000000000000000000000000",
        "projects": ["0123456789abcdef0123456789abcdef"],
        "token": "sim-demo-token",
    },
    "baidu": {
        "name": "demo",
        "ak": "simdemoak0000000000000000",
        "sk": "simdemosk00000000000000000000000",
        "compute_units": {"cu-demo00001": {"type": "GPU-I-2", "total_units": 64}},
    },
}


def seed_demo(sim: CloudSim, services: int) -> None:
    """Add the demo account and `services` running services to `sim`."""
    spec = DEMO_ACCOUNTS[sim.cloud]
    with sim.lock:
        sim.add_account(sim.new_account(dict(spec)))
        for i in range(services):
            template: dict[str, Any] = {"account": "demo", "name": f"demo-{i:03d}"}
            if sim.cloud in ("tencent", "huawei"):
                template["replicas"] = 1
            else:
                template["units"] = {"cu-demo00001": 1}
            sim.add_service(template)
