"""A socket's bounded outbox: events wait here until the socket can take them.

Lighter than ``asyncio.Queue`` and made for fan-out: putting never blocks (a full outbox
is the caller's signal that the socket is too slow), and a writer takes everything
waiting in one wake-up, so a burst of N events costs one task switch, not N.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    __slots__ = ("_items", "_limit", "_size", "_waiter", "oldest_put_at")

    def __init__(self, limit: int) -> None:
        # Made on first use: most sockets' outboxes stay empty, and a deque takes 760 bytes.
        self._items: deque[T] | None = None
        self._size = 0  # bytes (or any measure ``put`` is given) waiting
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        #: When the oldest waiting item was put in (monotonic): how long a batch waited.
        self.oldest_put_at = 0.0

    def put(self, item: T, size: int) -> bool:
        """Add ``item`` of ``size``; False, and nothing added, when it would overflow.

        An empty outbox takes any one item, so no single event is too big to deliver.
        """
        items = self._items
        if items is None:
            items = self._items = deque()
        if items and self._size + size > self._limit:
            return False
        if not items:
            self.oldest_put_at = time.monotonic()
        items.append(item)
        self._size += size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def take_all(self) -> deque[T]:
        """Wait until something is in the outbox, then take all of it."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take_now()

    def take_now(self) -> deque[T]:
        """Take all that is in the outbox (maybe nothing)."""
        items, self._items, self._size = self._items or deque(), None, 0
        return items

    def first(self) -> T:
        assert self._items
        return self._items[0]

    def pop_first(self, size: int) -> None:
        """Remove the first item, which counted ``size`` against the budget."""
        assert self._items
        self._items.popleft()
        self._size -= size

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0
