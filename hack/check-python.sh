#!/usr/bin/env bash
# Fails loudly, with directions, when the Python interpreter is missing or too old.
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "ERROR: $py not found. Install Python >= 3.11 (e.g. 'apt-get install python3 python3-venv') or run make PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "ERROR: $py is $("$py" --version 2>&1); cloudinfer-operator needs Python >= 3.11. Use make PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "ERROR: $py lacks the venv/ensurepip modules. Install them (e.g. 'apt-get install python3-venv')." >&2
  exit 1
fi
