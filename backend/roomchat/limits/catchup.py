"""A late burst is not abuse: messages owed to a user for time the server did not read them.

While the server does not read a socket, what the client sends meanwhile waits in the
socket, and the server then reads it all at once: after its reader was busy with one
frame (the shared limiter slow, the socket's posts in flight at their limit) or after
the whole event loop stalled (``ops.loopwatch``). The user's bucket, full by then, holds
only a burst, so a client that kept to the rate through a stall would be refused for it
and then closed as abusive. Instead a user earns ``rate * the time`` the server did not
read one of their sockets (up to ``CAP_SECONDS`` worth), and message frames spend it
before the bucket.

Only time that held frames back earns:

- a reader busy with a frame for at least ``PAUSE_SECONDS`` (handling a frame in the
  usual way takes far less, so a steady sender earns nothing by sending);
- a stall the reader waited through, if the socket's next frame is read within
  ``BACK_TO_BACK_SECONDS`` of its end: it was sent during the stall. A client that was
  silent through it and sends later earns nothing.

Overlapping time is earned once per user (their sockets stall together), and what is not
spent within ``EXPIRES_SECONDS`` of the time that earned it is forgotten: it is for the
frames already waiting, not for a later burst. So over any stretch of time a user's
sockets are let through at most what the rate allows over it, plus one burst, plus the
rate's worth of the time the server itself was not reading them. Counted in this worker.
"""

from __future__ import annotations

import math
import time

from roomchat.limits.buckets import Clock
from roomchat.ops.loopwatch import LoopWatch

#: The most a user may be owed: this many seconds at the message rate.
CAP_SECONDS = 60.0
#: What is owed and not spent this long after the time that earned it is forgotten.
EXPIRES_SECONDS = 5.0
#: A reader busy with one frame for less than this was not holding frames back.
PAUSE_SECONDS = 0.05
#: A frame read this long after a stall ended was sent after it.
BACK_TO_BACK_SECONDS = 0.5


class _Owed:
    __slots__ = ("messages", "until")

    def __init__(self) -> None:
        self.messages = 0.0
        self.until = -math.inf  # the end of the latest time earned (each second once)


class CatchUp:
    """What each user is owed, in this worker, at ``rate`` messages a second."""

    def __init__(
        self,
        *,
        rate: float,
        watch: LoopWatch,
        clock: Clock = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._rate, self._watch, self._clock, self._max_keys = rate, watch, clock, max_keys
        self._owed: dict[str, _Owed] = {}

    def socket(self, key: str) -> SocketReads:
        """The timing of one of ``key``'s sockets' reads, which earns for ``key``."""
        return SocketReads(self, key, self._watch, self._clock)

    def earn(self, key: str, start: float, end: float) -> None:
        """The server did not read one of ``key``'s sockets from ``start`` to ``end``."""
        now = self._clock()
        owed = self._owed.get(key)
        if owed is None:
            if len(self._owed) >= self._max_keys:
                self._forget_expired(now)
            owed = self._owed[key] = _Owed()
        elif now - owed.until > EXPIRES_SECONDS:
            owed.messages = 0.0
        start = max(start, owed.until, end - CAP_SECONDS)
        if end > start:
            owed.messages = min(
                CAP_SECONDS * self._rate, owed.messages + (end - start) * self._rate
            )
            owed.until = end

    def take(self, key: str) -> bool:
        """Spend one message of what ``key`` is owed; False when nothing is."""
        owed = self._owed.get(key)
        if owed is None or owed.messages < 1 or self._clock() - owed.until > EXPIRES_SECONDS:
            return False
        owed.messages -= 1
        return True

    def _forget_expired(self, now: float) -> None:
        self._owed = {k: o for k, o in self._owed.items() if now - o.until <= EXPIRES_SECONDS}


class SocketReads:
    """One socket's reader, timed: ``waiting`` just before each receive, ``received``
    just after; ``take`` spends what its user is owed."""

    __slots__ = ("_catch_up", "_clock", "_key", "_received_at", "_waiting_since", "_watch")

    def __init__(self, catch_up: CatchUp, key: str, watch: LoopWatch, clock: Clock) -> None:
        self._catch_up, self._key, self._watch, self._clock = catch_up, key, watch, clock
        self._received_at: float | None = None
        self._waiting_since = clock()

    def waiting(self) -> None:
        """The reader is about to wait for the next frame: it was busy since the last."""
        now = self._clock()
        busy_since = self._received_at
        if busy_since is not None and now - busy_since >= PAUSE_SECONDS:
            self._catch_up.earn(self._key, busy_since, now)
        self._waiting_since = now

    def received(self) -> None:
        """A frame came: one sent during a stall that just ended earns the stall."""
        now = self._received_at = self._clock()
        stall = self._watch.last_stall()
        if stall.ended > self._waiting_since and now - stall.ended <= BACK_TO_BACK_SECONDS:
            began = max(stall.ended - stall.seconds, self._waiting_since)
            self._catch_up.earn(self._key, began, stall.ended)

    def take(self) -> bool:
        return self._catch_up.take(self._key)
