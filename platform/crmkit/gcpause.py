"""Bulk work without the cyclic garbage collector.

Loading a config and seeding demo data make many objects and free few: the
collector would rescan the growing heap again and again (a quarter to a half of
the time) to find next to nothing. Reference counting still frees what is let go.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector off for the block (as it was afterwards); ``gc.collect()``
    inside the block frees cycles at a point of the caller's choosing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
