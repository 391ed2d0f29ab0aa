"""Hypothesis-generated InferenceService and CloudAccount objects, sent through the real
apiserver to a running operator. Each is rejected there with a message, or accepted and then
handled with a Ready condition; the operator stays healthy and does not loop hot."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import GROUP, REGIONS, VERSION
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from kubernetes.client.rest import ApiException
from scenario import Scenario, wait_until
from soak import hypothesis_settings

EXAMPLES = 30
"""Per kind, in `make test`."""
SOAK_EXAMPLES = 500
"""Per kind, in `make test-soak`."""

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value: schema-valid or not, semantically sound or not (no type junk: that
    comes from `one_field_junk`, one field at a time, or almost nothing would be accepted)."""
    return strategy


SPOILED_FIELDS = ("accountRef", "serviceId", "replicas", "rateLimit", "provider", "region",
                  "credentialsSecretRef", "pollIntervalSeconds", "extra")  # fmt: skip


def one_field_junk(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """The plausible spec as is, or with one (possibly new) field replaced by junk."""

    def spoil(pair: tuple[dict[str, Any], tuple[str, Any] | None]) -> dict[str, Any]:
        spec, spoiler = pair
        if spoiler is not None:
            spec = {**spec, spoiler[0]: spoiler[1]}
        return spec

    keys = st.sampled_from(SPOILED_FIELDS)
    return st.tuples(base, st.one_of(st.none(), st.tuples(keys, junk))).map(spoil)


cron = st.one_of(
    st.sampled_from(["0 22 * * *", "0 8 * * 1-5", "61 25 * * *", "*/5 * * * *", "0 0 31 2 *"]),
    st.text(alphabet="0123456789*/,- ", min_size=9, max_size=30),
)
isvc_spec = st.fixed_dictionaries(
    {
        "accountRef": maybe(st.fixed_dictionaries({"name": st.sampled_from(["acct", "ghost"])})),
        "serviceId": maybe(st.sampled_from(["@real", "@real", "ms-missing-1", "-bad", "x" * 300])),
    },
    optional={
        "replicas": maybe(st.integers(-3, 2000)),
        "suspend": maybe(st.booleans()),
        "rateLimit": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "requestsPerSecond": maybe(st.floats(-5, 1e9, allow_nan=False)),
                    "scope": maybe(st.sampled_from(["PerInstance", "PerService", "Bogus"])),
                    "unlimited": maybe(st.booleans()),
                },
            )
        ),
        "stopSchedule": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "timeZone": maybe(st.sampled_from(["UTC", "Asia/Shanghai", "Mars/Olympus"])),
                    "windows": maybe(
                        st.lists(st.fixed_dictionaries({"stop": cron, "start": cron}), max_size=3)
                    ),
                    "stopAt": maybe(st.sampled_from(["2030-01-01T00:00:00Z", "yesterday", ""])),
                },
            )
        ),
        "policy": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "mode": maybe(st.sampled_from(["Enforce", "ObserveOnly", "Chaos"])),
                    "onDelete": maybe(st.sampled_from(["Retain", "Stop", "Delete"])),
                },
            )
        ),
    },
)
account_spec = st.fixed_dictionaries(
    {
        "provider": maybe(st.sampled_from(["tencent", "huawei", "baidu", "aws"])),
        "credentialsSecretRef": maybe(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["acct-creds", "missing", "Bad_Name"])},
                optional={"accessKeyIdKey": maybe(st.sampled_from(["accessKeyId", "nope", "a b"]))},
            )
        ),
    },
    optional={
        "region": maybe(st.sampled_from(["ap-guangzhou", "bj", "cn-north-4", "Bad Region", ""])),
        "endpoint": maybe(
            st.sampled_from(["@sim", "ftp://127.0.0.1:1", "http://127.0.0.1:1", "not a url", ""])
        ),
        "projectId": maybe(st.text(max_size=40)),
        "caBundleRef": maybe(st.fixed_dictionaries({"name": st.sampled_from(["none", "x"])})),
        "rateBudgets": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "readsPerSecond": maybe(st.floats(-1, 1e6, allow_nan=False)),
                    "writesPerSecond": maybe(st.floats(-1, 1e6, allow_nan=False)),
                },
            )
        ),
        "pollIntervalSeconds": maybe(st.integers(-10, 10**6)),
        "activePollIntervalSeconds": maybe(st.integers(-10, 10**6)),
    },
)


def names_a_spec_field(body: str) -> bool:
    """A clear rejection: a Status whose message, or one of its causes, names the field
    (`spec.replicas: Invalid value ...`), not just "invalid"."""
    status = json.loads(body)
    message = str(status.get("message") or "")
    causes = (status.get("details") or {}).get("causes") or []
    fields = [str(c.get("field") or "") for c in causes if c.get("message")]
    return status.get("kind") == "Status" and (
        any(f.startswith("spec") for f in fields) or "spec." in message
    )


@pytest.mark.parametrize(
    "examples",
    [
        pytest.param(EXAMPLES, id="30"),
        pytest.param(SOAK_EXAMPLES, marks=pytest.mark.soak, id="soak-500"),
    ],
)
def test_generated_objects_are_rejected_or_handled_without_a_hot_loop(
    scenario: Scenario, examples: int
) -> None:
    settings = hypothesis_settings(examples, soak=examples != EXAMPLES, suppress=list(HealthCheck))
    handle = scenario.account("tencent")
    operator = scenario.operator()
    names = (f"gen{i}" for i in itertools.count())
    accepted: dict[str, str] = {}  # name -> plural
    rejected: list[str] = []

    def create(plural: str, kind: str, spec: Any) -> None:
        name = next(names)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name},
                "spec": spec}  # fmt: skip
        try:
            scenario.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, scenario.ns, plural, body
            )
        except ApiException as err:
            assert err.status in (400, 422), (err.status, err.body)
            assert names_a_spec_field(err.body or ""), err.body
            rejected.append(f"{name}: {err.body}")
            return
        accepted[name] = plural

    @settings
    @given(one_field_junk(isvc_spec))
    def services(spec: dict[str, Any]) -> None:
        if spec.get("serviceId") == "@real":
            spec["serviceId"] = handle.add_service(name="fuzz", replicas=1)
        create("inferenceservices", "InferenceService", spec)

    @settings
    @given(one_field_junk(account_spec))
    def accounts(spec: dict[str, Any]) -> None:
        if spec.get("endpoint") == "@sim":
            spec["endpoint"] = handle.sim.base_url
        provider = spec.get("provider")
        if isinstance(provider, str) and provider in REGIONS and "region" not in spec:
            spec["region"] = REGIONS[provider]
        create("cloudaccounts", "CloudAccount", spec)

    services()
    accounts()
    assert rejected, "nothing was rejected: the generators are too tame"
    assert len(accepted) >= 10, "\n".join(r[:300] for r in rejected)

    def condition(name: str) -> dict[str, Any]:
        return scenario.kube.condition(scenario.ns, name, plural=accepted[name])

    wait_until(
        lambda: all(condition(name).get("reason") for name in accepted),
        timeout=60, what="a Ready condition on every accepted object",
    )  # fmt: skip
    reasons: Counter[str] = Counter()
    for name, plural in accepted.items():
        cond = condition(name)
        assert cond["status"] in ("True", "False") and cond["message"], (name, cond)
        reasons[f"{plural}:{cond['reason']}"] += 1
    print(f"rejected {len(rejected)}, accepted {len(accepted)}: {dict(reasons)}")

    # No hot loop: in a quiet period, few status writes per object.
    def versions() -> dict[str, str]:
        out = {}
        for plural in ("inferenceservices", "cloudaccounts"):
            listed = scenario.kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, scenario.ns, plural
            )
            out |= {
                i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]
            }
        return out

    time.sleep(3)
    seen: dict[str, set[str]] = {}
    assert operator.process is not None
    cpu_before, started = _cpu_seconds(operator.process.pid), time.monotonic()
    for _ in range(16):
        for name, version in versions().items():
            seen.setdefault(name, set()).add(version)
        time.sleep(0.5)
    busy = {name: len(v) for name, v in seen.items() if len(v) > 3}
    assert not busy, f"status written over and over in 8 s: {busy}"
    cpu = (_cpu_seconds(operator.process.pid) - cpu_before) / (time.monotonic() - started)
    assert cpu < 0.25, f"the operator used {cpu:.0%} of a core while nothing changed"
    assert operator.healthy()
    scenario.finish({})


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
