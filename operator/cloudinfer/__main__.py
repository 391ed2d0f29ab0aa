"""`python -m cloudinfer`: the same as the `cloudinfer-operator` console script."""

import sys

from cloudinfer.main.entry import main

sys.exit(main())
