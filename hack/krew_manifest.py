"""The krew plugin archive and manifest for a release: `python hack/krew_manifest.py VERSION
BASE_URL OUT_DIR` writes OUT_DIR/kubectl-cloudinfer.tar.gz (the launcher
deploy/krew/kubectl-cloudinfer and LICENSE) and OUT_DIR/cloudinfer.yaml, the manifest naming
BASE_URL/kubectl-cloudinfer.tar.gz and its sha256. docs/cli.md, "Installing"."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "deploy" / "krew" / "kubectl-cloudinfer"
ARCHIVE = "kubectl-cloudinfer.tar.gz"


def archive(out: Path) -> bytes:
    """A reproducible tar.gz: fixed times and owners, so the sha256 depends on content only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, mode in ((LAUNCHER, 0o755), (ROOT / "LICENSE", 0o644)):
            if not path.exists():
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    body = buffer.getvalue()
    (out / ARCHIVE).write_bytes(body)
    return body


def manifest(version: str, base_url: str, sha256: str) -> dict[str, object]:
    return {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": "cloudinfer"},
        "spec": {
            "version": version,
            "shortDescription": "Fleet view, plans and wake/pause for cloudinfer services",
            "description": (
                "The cloudinfer operator's view of inference services on TI-ONE, ModelArts\n"
                "and Qianfan: accounts, budgets and what is not Ready (status), one\n"
                "service's story (get), what the operator would send now (plan), what a\n"
                "reason means (why), and the wake and pause annotations.\n"
            ),
            "caveats": (
                "The plugin is a Python package: install it with\n"
                "  pip install cloudinfer-operator\n"
                "(or set CLOUDINFER_PYTHON to a Python that has it).\n"
            ),
            "platforms": [
                {
                    "selector": {"matchExpressions": [
                        {"key": "os", "operator": "In", "values": ["linux", "darwin"]}
                    ]},
                    "uri": f"{base_url.rstrip('/')}/{ARCHIVE}",
                    "sha256": sha256,
                    "bin": "kubectl-cloudinfer",
                }
            ],
        },
    }  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    version, base_url, out_dir = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(archive(out)).hexdigest()
    text = yaml.safe_dump(manifest(version, base_url, sha), sort_keys=False)
    (out / "cloudinfer.yaml").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
