"""Keeps the Kubernetes client libraries out of the operator process unless a login needs one.

`import kopf` imports `kubernetes.client` whenever it is installed, only to recognise its model
classes: every API and model module, about 12 MB of RSS that the operator never uses (it talks
to the apiserver through Kopf's aiohttp session, see apiserver.py and kube.py). The console
script calls `keep_out()` before anything imports Kopf; a kubeconfig that only the client
library understands (an exec plugin, say) calls `let_in()` and pays for it.
"""

from __future__ import annotations

import sys
from typing import Final

LIBRARIES: Final = ("kubernetes", "kubernetes_asyncio", "pykube")


def keep_out() -> None:
    """Make later imports of the client libraries fail (a None entry in sys.modules raises
    ImportError), so Kopf takes its "not installed" path. A library already imported stays."""
    for name in LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def let_in() -> None:
    """Undo `keep_out()`: the next import loads the library for real."""
    for name in LIBRARIES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
