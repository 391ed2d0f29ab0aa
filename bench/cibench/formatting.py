"""How the benchmark tables print a JSON value."""

from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 2) -> str:  # noqa: ANN401 - any JSON scalar
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
