"""What `make test-live` runs, from the environment: which clouds, which accounts, which writes.

Nothing here talks to a cloud. `plan(environ)` reads only the `CLOUDINFER_LIVE_*` variables
and says what would run, what would not, and what is wrong with the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    Credentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.model import Cloud
from cloudinfer.cloud.provider import Account

PREFIX = "CLOUDINFER_LIVE_"
POLL_SECONDS_VAR = PREFIX + "POLL_SECONDS"
WRITE_TIMEOUT_VAR = PREFIX + "WRITE_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class CloudVars:
    """The environment variables of one cloud."""

    cloud: Cloud
    label: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def name(self, suffix: str) -> str:
        return f"{PREFIX}{self.cloud.value.upper()}_{suffix}"

    @property
    def required_names(self) -> list[str]:
        return [self.name(s) for s in self.required]

    @property
    def write_names(self) -> list[str]:
        return [self.name("WRITE_SERVICE_ID"), self.name("WRITE_REPLICAS")]

    @property
    def all_names(self) -> list[str]:
        return self.required_names + [self.name(s) for s in self.optional] + self.write_names


CLOUDS = (
    CloudVars(
        Cloud.TENCENT, "TI-ONE", ("SECRET_ID", "SECRET_KEY", "REGION"), ("TOKEN", "ENDPOINT")
    ),
    CloudVars(
        Cloud.HUAWEI,
        "ModelArts",
        ("AK", "SK", "PROJECT_ID", "REGION"),
        ("SECURITY_TOKEN", "ENDPOINT"),
    ),
    CloudVars(Cloud.BAIDU, "Qianfan", ("AK", "SK"), ("REGION", "ENDPOINT")),
)


@dataclass(frozen=True)
class Write:
    """The one service a write test may change, and the replica count it scales it to."""

    service_id: str
    replicas: int


@dataclass
class LivePlan:
    accounts: dict[Cloud, Account] = field(default_factory=dict)
    writes: dict[Cloud, Write] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _credentials(cloud: CloudVars, env: Mapping[str, str]) -> Credentials:
    def get(suffix: str) -> str:
        return env[cloud.name(suffix)]

    def optional(suffix: str) -> Secret | None:
        value = env.get(cloud.name(suffix), "")
        return Secret(value) if value else None

    if cloud.cloud is Cloud.TENCENT:
        return TencentCredentials(get("SECRET_ID"), Secret(get("SECRET_KEY")), optional("TOKEN"))
    if cloud.cloud is Cloud.HUAWEI:
        return HuaweiCredentials(
            get("AK"), Secret(get("SK")), get("PROJECT_ID"), optional("SECURITY_TOKEN")
        )
    return BaiduCredentials(get("AK"), Secret(get("SK")))


def _write(cloud: CloudVars, env: Mapping[str, str], out: LivePlan) -> None:
    service_id = env.get(cloud.name("WRITE_SERVICE_ID"), "")
    raw = env.get(cloud.name("WRITE_REPLICAS"), "")
    if not service_id and not raw:
        out.not_run.append(
            f"{cloud.label} writes (read-only run): set {' and '.join(cloud.write_names)} "
            "to scale that one service and scale it back"
        )
        return
    if not service_id or not raw:
        out.problems.append(f"{cloud.label}: writes need both {' and '.join(cloud.write_names)}")
        return
    if not raw.isdigit() or int(raw) < 1:
        out.problems.append(f"{cloud.name('WRITE_REPLICAS')} must be a whole number >= 1")
        return
    out.writes[cloud.cloud] = Write(service_id, int(raw))


def plan(env: Mapping[str, str]) -> LivePlan:
    out = LivePlan()
    for cloud in CLOUDS:
        present = [name for name in cloud.all_names if env.get(name)]
        missing = [name for name in cloud.required_names if not env.get(name)]
        if not present:
            out.not_run.append(f"{cloud.label}: not configured ({', '.join(cloud.required_names)})")
            continue
        if missing:
            out.problems.append(
                f"{cloud.label} is configured in part; also set {', '.join(missing)}"
            )
            continue
        default_region = "bj" if cloud.cloud is Cloud.BAIDU else ""
        out.accounts[cloud.cloud] = Account(
            name=f"live/{cloud.cloud.value}",
            cloud=cloud.cloud,
            region=env.get(cloud.name("REGION"), default_region),
            credentials=_credentials(cloud, env),
            endpoint=env.get(cloud.name("ENDPOINT")) or None,
        )
        _write(cloud, env, out)
    if not out.accounts and not out.problems:
        lines = [f"  {cloud.label}: {' '.join(cloud.required_names)}" for cloud in CLOUDS]
        out.problems.append(
            "make test-live needs the credentials of at least one cloud in these environment "
            "variables:\n"
            + "\n".join(lines)
            + "\nOptional: "
            + ", ".join(cloud.name(s) for cloud in CLOUDS for s in cloud.optional)
            + ".\nWrites run only with <CLOUD>_WRITE_SERVICE_ID and <CLOUD>_WRITE_REPLICAS, e.g. "
            + " and ".join(CLOUDS[0].write_names)
            + "."
        )
    return out
