"""Start-up tuning for a long-lived server process."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Collect the youngest generation after this many allocations (CPython's default: 700).
YOUNG_THRESHOLD = 10_000

_holders = 0
_saved_threshold: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def settled_garbage_collector() -> Iterator[None]:
    """Keep the collector's full passes off what lives as long as the server, while it runs.

    Everything built by then (modules, routes, the ORM's mappings: a few hundred thousand
    objects) is moved out of the collector's view (``gc.freeze``), so a full collection
    walks only what the sockets hold. The youngest generation is collected after 10,000
    allocations instead of 700: every connect and message allocates a few hundred objects,
    and each young collection costs time on the event loop.

    Once per process: a second server started inside the first changes nothing, and the
    collector is as it was when the last one stops.
    """
    global _holders, _saved_threshold
    if _holders == 0:
        _saved_threshold = gc.get_threshold()
        gc.collect()
        gc.freeze()
        _, older, oldest = _saved_threshold
        gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    _holders += 1
    try:
        yield
    finally:
        _holders -= 1
        if _holders == 0:
            gc.unfreeze()
            gc.set_threshold(*_saved_threshold)
