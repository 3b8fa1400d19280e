"""Noticing when this process's event loop did not run: a freeze (SIGSTOP, a long garbage
collection, a blocking call), seen as a timer that fires late.

Nothing is read from any socket while the loop is stalled, so what clients sent meanwhile
arrives at once when it resumes; ``limits.catchup`` asks this watch about the latest
stall to tell such a late burst from a flood.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger(__name__)

#: How often the watch's timer is due.
INTERVAL_SECONDS = 0.1
#: A timer this much late, or less, is the loop's ordinary jitter, not a stall.
STALL_SECONDS = 0.05
#: A stall at least this long is logged.
LOGGED_STALL_SECONDS = 1.0


class Stall(NamedTuple):
    ended: float  # when it ended (the clock's seconds; -inf: none yet)
    seconds: float  # how long it lasted


NO_STALL = Stall(-math.inf, 0.0)


class LoopWatch:
    """A timer due every ``INTERVAL_SECONDS``: when it fires late by over ``STALL_SECONDS``,
    the loop stalled for that long.

    A socket's data may be read before the watch's own timer runs after a stall (the
    loop runs I/O callbacks before timers), so ``last_stall`` also counts the stall
    under way: the lateness of a timer that is overdue now.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` must be the loop's (``time.monotonic``, as asyncio's loops use)."""
        self._clock = clock
        self._due = math.inf  # not started: nothing is overdue
        self._last = NO_STALL
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Watch the running loop, until ``stop``."""
        self._due = self._clock() + INTERVAL_SECONDS
        self._timer = asyncio.get_running_loop().call_later(INTERVAL_SECONDS, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = math.inf

    def _fire(self) -> None:
        self.tick()
        self._timer = asyncio.get_running_loop().call_later(INTERVAL_SECONDS, self._fire)

    def tick(self) -> None:
        """The timer fired: note a stall if it is late, and set the next one due."""
        now = self._clock()
        late = now - self._due
        if late > STALL_SECONDS:
            self._last = Stall(now, late)
            if late >= LOGGED_STALL_SECONDS:
                log.info("the event loop stalled for %.1f s (nothing was read meanwhile)", late)
        self._due = now + INTERVAL_SECONDS

    def last_stall(self) -> Stall:
        """The latest stall: one under way now (ending as the caller runs), or else the
        last one the timer saw; ``NO_STALL`` when there was none."""
        now = self._clock()
        late = now - self._due
        return Stall(now, late) if late > STALL_SECONDS else self._last
