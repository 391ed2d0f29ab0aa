"""The `cloudinfer-operator` console script (and `python -m cloudinfer`)."""

from __future__ import annotations

from cloudinfer.main import client_library


def main() -> int:
    client_library.keep_out()
    from cloudinfer.main import cli  # noqa: PLC0415 - imports Kopf, so only after keep_out()

    return cli.main()
