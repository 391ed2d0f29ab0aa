"""IANA time zone names accepted by the apiserver, from the pinned `tzdata` package.

Reading the list from `tzdata` (not the host's /usr/share/zoneinfo) keeps the generated CRD
identical on every machine, and matches what `zoneinfo` resolves at run time.
"""

from __future__ import annotations

import importlib.resources
import json
from functools import cache
from typing import Any


@cache
def iana_time_zones() -> tuple[str, ...]:
    """Every zone name the pinned tzdata release ships, sorted."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return tuple(sorted(set(text.split())))


def _time_zone_rule() -> dict[str, Any]:
    names = ", ".join(json.dumps(name).replace('"', "'") for name in iana_time_zones())
    return {
        "x-kubernetes-validations": [
            {
                "rule": f"self in [{names}]",
                "messageExpression": "'unknown time zone \"' + self + '\"; use an IANA name "
                "such as Europe/Berlin or Asia/Shanghai'",
            }
        ]
    }


TIME_ZONE_RULE = _time_zone_rule()
