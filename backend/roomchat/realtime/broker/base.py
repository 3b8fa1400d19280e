"""The broker and presence interfaces that the room manager talks to.

Implementations: ``memory`` (one process) and ``redis`` (several workers and hosts). They
carry ``str`` payloads on ``str`` channels (one channel per room) and must behave alike,
down to serialization, so that a test that passes on one passes on the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol


class BrokerUnavailableError(Exception):
    """The broker (Redis) cannot be reached now; the caller may retry later."""


class Gap:
    """Yielded by a subscription when payloads may have been lost in between.

    A Redis subscription yields it after reconnecting (and once re-subscribed), and when
    it was entered while Redis was away. The subscriber recovers from the store.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "GAP"


GAP: Final = Gap()


class Subscription(Protocol):
    """Payloads published to one channel after ``subscribe`` returned, in publish order.

    ``GAP`` in the stream marks a place where payloads may be missing.
    """

    def __aiter__(self) -> AsyncIterator[str | Gap]: ...


class Broker(Protocol):
    """Fan-out of payloads to every subscriber of a channel, in every process.

    Guarantee: at most once, in order per channel, to subscribers that were subscribed when
    the payload was published; a loss (a dropped connection) is never silent: the
    subscription yields ``GAP``. Nothing is replayed: what a socket missed is recovered
    from the store, which is why a message is stored before it is published.
    """

    @property
    def connected(self) -> bool:
        """False while the broker is reconnecting: publishing now would fail."""
        ...

    async def publish(self, channel: str, payload: str) -> None:
        """Raise ``BrokerUnavailableError`` when the payload could not be handed over."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribed once entered (or ``GAP`` first, if entered while away); unsubscribed
        on exit."""
        ...

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the broker has (re)connected and every channel it
        carries is subscribed again. What was published while it was away is lost: each
        subscription's ``GAP`` recovers the messages; presence is the caller's to read again.
        """
        ...

    async def ping(self) -> None:
        """Raise ``BrokerUnavailableError`` unless the broker answers now (readiness)."""
        ...

    async def close(self) -> None: ...


class Presence(Protocol):
    """Who is online in which room, counted per user: two tabs are one member; and how
    many sockets each user has open, for ``ROOMCHAT_MAX_SOCKETS_PER_USER``."""

    async def add(self, room: str, user: str, connection_id: str) -> bool:
        """Record a connection; True when it is the user's first in the room."""
        ...

    async def remove(self, room: str, user: str, connection_id: str) -> bool:
        """Forget a connection; True when it was the user's last in the room."""
        ...

    async def members(self, room: str) -> list[str]:
        """Sorted user names; ``BrokerUnavailableError`` when it cannot be known now."""
        ...

    async def members_of(self, rooms: Collection[str]) -> dict[str, list[str]]:
        """``members`` of each room, read together (at one moment, on Redis)."""
        ...

    async def recover(self) -> None:
        """After the backend was away: write this worker's connections to it again
        (announcing the joins and leaves that makes), then wait until the other workers
        alive before have done the same, or are past their TTL (dead), so that what
        ``members`` reads next is whole. ``BrokerUnavailableError`` when it cannot now."""
        ...

    async def rooms(self) -> dict[str, int]:
        """Rooms with members online, and how many."""
        ...

    async def claim_socket(self, user: str, limit: int) -> bool:
        """Count one more socket of ``user`` (in any room, on any worker), unless they
        already have ``limit``: then False, and nothing counted."""
        ...

    async def release_socket(self, user: str) -> None:
        """One socket of ``user`` (claimed here) has closed."""
        ...

    async def close(self) -> None: ...
