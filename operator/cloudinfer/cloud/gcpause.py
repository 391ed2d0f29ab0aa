"""Holding the cyclic garbage collector off while a decoded list page is read (issue 19).

A TI-ONE list page decodes into ~15,000 dicts and lists. With the collector on, the
allocations of decoding alone trigger young collections that find the half-built page alive
and promote it, page after page, into the oldest generation, until a full collection walks
the whole heap (at N = 10,000, several per list of 100 pages: over a quarter of a steady
list's CPU, bench/bench_list_decode.py). A page holds no reference cycle and is freed by
reference counting, so while the collector is held off from the decode until the page is
dropped, its objects come and go without a collection. The pause covers synchronous code
only: no other task runs meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside; if the collector was off already, it stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
