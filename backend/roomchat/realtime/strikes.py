"""What a socket may send that the room never sees, before it counts as abuse.

Every frame that does nothing counts as a strike: a message refused for coming too fast,
a bad frame (malformed, unknown type, bad text, binary), a typing frame past what anyone
types. Strikes refill at the message rate, up to the message burst, so a client that
makes a mistake now and then is never closed, and one that floods the server with junk
is closed (1008) after about a burst's worth, instead of being answered for ever. They
are counted per user (in this worker), so reconnecting after the close refills nothing.
"""

from __future__ import annotations

from roomchat.limits.buckets import KeyedRateLimiter, TokenBucket

#: Typing frames announced to the room: at most this many a second (and 2 at once).
TYPING_ANNOUNCED_PER_SECOND = 1.0
#: Typing frames taken without complaint: one a keystroke, as some clients send them.
#: Past this rate each one is a strike.
TYPING_FRAMES_PER_SECOND = 10.0
TYPING_FRAMES_BURST = 20


class Strikes:
    """One socket's tolerance for frames that do nothing: its user's strikes (``shared``,
    under ``key``), and its own typing frames."""

    __slots__ = ("_announced", "_key", "_strikes", "_typing")

    def __init__(self, shared: KeyedRateLimiter, key: str) -> None:
        self._strikes, self._key = shared, key
        self._announced = TokenBucket(rate=TYPING_ANNOUNCED_PER_SECOND, burst=2)
        self._typing = TokenBucket(rate=TYPING_FRAMES_PER_SECOND, burst=TYPING_FRAMES_BURST)

    def strike(self) -> bool:
        """Count a frame that did nothing; False once the socket is past its budget."""
        return self._strikes.allow(self._key)

    def typing(self) -> tuple[bool, bool]:
        """A typing frame: ``(announce it, still tolerated)``."""
        if self._announced.take():
            self._typing.take()
            return True, True
        return False, self._typing.take() or self.strike()
