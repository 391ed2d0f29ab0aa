"""`python -m cloudinfer.kubectl`, the same as the `kubectl-cloudinfer` console script."""

from cloudinfer.kubectl.cli import main

raise SystemExit(main())
