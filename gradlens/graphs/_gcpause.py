"""Pause Python's cyclic garbage collector while a graph is built or drawn.

Building a large graph allocates hundreds of thousands of dicts and tuples that all stay alive; each one
counts towards the collector's thresholds, so full collections keep scanning the whole (growing) heap.
Pausing the collector for the duration halves the time of a 20,000-node ``graph()`` on torch. Reference
counting still frees everything as usual; the collector's previous state is restored on exit.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic garbage collector inside the block (restores the previous state; nests)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
