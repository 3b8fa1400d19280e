"""The broker and presence interfaces that the room manager talks to.

Implementations: ``memory`` (one process) and ``redis`` (several workers and hosts). They
carry ``str`` payloads on ``str`` channels (one channel per room) and must behave alike,
down to serialization, so that a test that passes on one passes on the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Subscription(Protocol):
    """Payloads published to one channel after ``subscribe`` returned, in publish order."""

    def __aiter__(self) -> AsyncIterator[str]: ...


class Broker(Protocol):
    """Fan-out of payloads to every subscriber of a channel, in every process.

    Guarantee: at most once, in order per channel, to subscribers that were subscribed when
    the payload was published. Nothing is replayed: what a socket missed is recovered from
    the store, which is why a message is stored before it is published.
    """

    async def publish(self, channel: str, payload: str) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribed once entered; unsubscribed on exit."""
        ...

    def sequence(self, channel: str) -> AbstractAsyncContextManager[None]:
        """Held around "store, then publish" so that ids reach every member in id order."""
        ...

    async def close(self) -> None: ...


class Presence(Protocol):
    """Who is online in which room, counted per user: two tabs are one member."""

    async def add(self, room: str, user: str, connection_id: str) -> bool:
        """Record a connection; True when it is the user's first in the room."""
        ...

    async def remove(self, room: str, user: str, connection_id: str) -> bool:
        """Forget a connection; True when it was the user's last in the room."""
        ...

    async def members(self, room: str) -> list[str]: ...

    async def rooms(self) -> dict[str, int]:
        """Rooms with members online, and how many."""
        ...

    async def close(self) -> None: ...
