"""Text output: aligned tables, ages, and colour only on a terminal."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Sequence
from typing import TextIO

GREEN, RED, YELLOW, BOLD = "32", "31", "33", "1"


class Painter:
    """ANSI colour, or plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled and text else text

    def status(self, value: str) -> str:
        """A condition status: True green, False red, anything else yellow."""
        return self(value, {"True": GREEN, "False": RED}.get(value, YELLOW))


def wants_colour(choice: str, stream: TextIO = sys.stdout) -> bool:
    """--color=auto: only on a terminal, and never with NO_COLOR set or TERM=dumb."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def _visible_length(text: str) -> int:
    length, escape = 0, False
    for char in text:
        if char == "\033":
            escape = True
        elif escape and char == "m":
            escape = False
        elif not escape:
            length += 1
    return length


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell, kubectl style; the last column is not padded."""
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(_visible_length(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell + " " * (widths[i] - _visible_length(cell)) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        ]
        lines.append(indent + "   ".join(parts).rstrip())
    return "\n".join(lines)


def age(seconds: float | None) -> str:
    """kubectl's short ages: 45s, 3m, 2h, 4d."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when(value: str | None, now: datetime.datetime) -> str:
    """An RFC 3339 time from status, with how far it is from now."""
    if not value:
        return "-"
    try:
        at = datetime.datetime.fromisoformat(value)
    except ValueError:
        return value
    delta = (at - now).total_seconds()
    relative = f"in {age(delta)}" if delta > 0 else f"{age(-delta)} ago"
    return f"{value} ({relative})"


def cut(text: str, width: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
