"""Compare a response's structure (keys and JSON types) with a seed example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

# Keys the vendor documents as "此字段可能返回 null" or that are objects only when configured:
# the seed may show an object where a simulated service legitimately has null.
NULLABLE = frozenset(
    {
        "VolumeMount",
        "LogConfig",
        "HorizontalPodAutoscaler",
        "ResourceTotal",
        "Pods",
        "ScheduledAction",
    }
)


def seed(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def shape_mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every place where `actual` lacks a key of `expected` or has another JSON type.

    A null in the seed says nothing about the type, so it matches anything. Lists are
    compared element-wise against the seed's first element.
    """
    if expected is None:
        return []
    key = path.rsplit(".", 1)[-1]
    if actual is None and key in NULLABLE:
        return []
    if _kind(expected) != _kind(actual):
        return [f"{path}: seed {_kind(expected)}, got {_kind(actual)}"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for name, value in expected.items():
            if name not in actual:
                problems.append(f"{path}.{name}: missing")
            else:
                problems += shape_mismatches(value, actual[name], f"{path}.{name}")
    elif isinstance(expected, list) and expected and actual:
        for i, item in enumerate(actual):
            problems += shape_mismatches(expected[0], item, f"{path}[{i}]")
    return problems
