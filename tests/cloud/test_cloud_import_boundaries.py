"""The cloud layer never imports the vendor SDKs (test-only oracles) or the simulators.

import-linter guards cloudsim/controlplane for all of cloudinfer; nothing guards the SDKs there
yet, so this test does it for cloudinfer.cloud, where the temptation lives."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR_ROOT = Path(__file__).resolve().parents[2] / "operator"
CLOUDINFER = OPERATOR_ROOT / "cloudinfer"
FORBIDDEN = ("tencentcloud", "huaweicloudsdkcore", "huaweicloudsdkmodelarts", "baidubce", "qianfan")
FORBIDDEN_LOCAL = ("cloudsim", "controlplane")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


MODULES = sorted((CLOUDINFER / "cloud").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(OPERATOR_ROOT)) for p in MODULES])
def test_no_sdk_or_simulator_imports(path: Path) -> None:
    assert not _imported_roots(path) & {*FORBIDDEN, *FORBIDDEN_LOCAL}


def test_importing_the_cloud_layer_loads_no_sdk() -> None:
    """Catches indirect imports too (e.g. through a third-party package)."""
    modules = [
        "cloudinfer.cloud."
        + str(p.relative_to(CLOUDINFER / "cloud").with_suffix("")).replace("/", ".")
        for p in sorted((CLOUDINFER / "cloud").rglob("*.py"))
        if p.name != "__init__.py"
    ]
    script = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
