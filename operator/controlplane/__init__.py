"""A local Kubernetes control plane built from source, for tests, the demo and benchmarks.

Not part of the operator: `cloudinfer` never imports it (an import-linter contract checks).
"""

from controlplane.launcher import ControlPlane, ControlPlaneError, find_bin_dir

__all__ = ["ControlPlane", "ControlPlaneError", "find_bin_dir"]
