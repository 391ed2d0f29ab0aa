"""Exit codes scripts can rely on, and the one error type that carries one (docs/cli.md)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    """A bug in the plugin: one line, and --debug shows the traceback."""
    USAGE = 2
    """Bad flags or arguments (argparse's own code)."""
    NOT_FOUND = 3
    """The InferenceService (or namespace) does not exist."""
    CRD_MISSING = 4
    """The cloudinfer.dev CRDs are not installed in the cluster."""
    UNREACHABLE = 5
    """The apiserver cannot be reached, or the kubeconfig cannot be used."""
    FORBIDDEN = 6
    """The apiserver refused the credentials (401) or the request (403)."""
    NO_OPERATOR = 7
    """No operator is running: what status says may be stale (the output is still printed)."""


class PluginError(Exception):
    """An expected failure: printed as one line on stderr, exits with `code`."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
