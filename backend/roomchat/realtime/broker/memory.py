"""The in-process broker and presence: rooms shared by the sockets of one process."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

from roomchat.realtime.broker.base import Gap


class MemorySubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[str | Gap]:
        while True:
            yield await self.queue.get()


class MemoryBroker:
    """Delivers each payload to the channel's subscribers in this process, in order.

    A subscriber's queue is unbounded here on purpose: its only reader is the room
    manager's listener, which never waits on a socket (sockets have bounded queues).
    Nothing is ever lost in one process, so it never yields ``GAP``.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, set[MemorySubscription]] = defaultdict(set)

    @property
    def connected(self) -> bool:
        return True

    async def publish(self, channel: str, payload: str) -> None:
        for subscription in self._subscribers.get(channel, ()):
            subscription.queue.put_nowait(payload)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[MemorySubscription]:
        subscription = MemorySubscription()
        self._subscribers[channel].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[channel].discard(subscription)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        return None  # never away

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()


class MemoryPresence:
    def __init__(self) -> None:
        self._connections: dict[str, dict[str, set[str]]] = {}
        self._sockets: dict[str, int] = {}

    async def add(self, room: str, user: str, connection_id: str) -> bool:
        users = self._connections.setdefault(room, {})
        first = user not in users
        users.setdefault(user, set()).add(connection_id)
        return first

    async def remove(self, room: str, user: str, connection_id: str) -> bool:
        users = self._connections.get(room, {})
        connections = users.get(user)
        if connections is None:
            return False
        connections.discard(connection_id)
        if connections:
            return False
        del users[user]
        if not users:
            del self._connections[room]
        return True

    async def members(self, room: str) -> list[str]:
        return sorted(self._connections.get(room, {}))

    async def members_of(self, rooms: Collection[str]) -> dict[str, list[str]]:
        return {room: await self.members(room) for room in rooms}

    async def recover(self) -> None:
        return None  # nothing is ever lost in one process

    async def rooms(self) -> dict[str, int]:
        return {room: len(users) for room, users in self._connections.items()}

    async def claim_socket(self, user: str, limit: int) -> bool:
        count = self._sockets.get(user, 0)
        if count >= limit:
            return False
        self._sockets[user] = count + 1
        return True

    async def release_socket(self, user: str) -> None:
        count = self._sockets.pop(user, 0) - 1
        if count > 0:
            self._sockets[user] = count

    async def close(self) -> None:
        self._connections.clear()
        self._sockets.clear()
