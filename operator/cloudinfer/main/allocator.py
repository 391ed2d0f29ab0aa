"""glibc malloc settings for a long-running asyncio process (no-ops on other C libraries).

glibc's defaults suit short programs. Here they keep memory the operator no longer uses:
each thread that allocates (status writes run in a thread pool) gets its own arena, up to
8 per CPU, and a freed large block (a cloud list page is ~300 KB) raises the threshold
below which later large blocks come from the heap instead of their own mapping, where
fragmentation keeps the pages. Measured at 1,000 services in bench/README.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from typing import Final

logger = logging.getLogger(__name__)

# mallopt(3) parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8

ARENAS: Final = 2
"""The event loop's thread and the pool's threads share this many arenas."""
MMAP_THRESHOLD_BYTES: Final = 128 * 1024
"""glibc's initial value, fixed: a large block always gets its own mapping, returned on free."""
TRIM_THRESHOLD_BYTES: Final = 256 * 1024
"""Free memory at the top of the heap above this goes back to the system at once."""


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(name)
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def tune() -> bool:
    """Apply the settings; call before any thread starts. True if this is glibc."""
    libc = _glibc()
    if libc is None:
        return False
    for param, value in (
        (M_ARENA_MAX, ARENAS),
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    ):
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            logger.debug("mallopt(%d, %d) was refused", param, value)
    return True


def release_free_memory() -> None:
    """Give free pages inside the heap back to the system (malloc_trim(3))."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))
