"""A socket's bounded outbox: events wait here for the socket's writer.

Lighter than ``asyncio.Queue`` and made for fan-out: putting never blocks (a full outbox
is the caller's signal that the socket is too slow), and the writer takes everything
waiting in one wake-up, so a burst of N events costs one task switch, not N.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    __slots__ = ("_items", "_limit", "_waiter", "oldest_put_at")

    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        #: When the oldest waiting item was put in (monotonic): how long a batch waited.
        self.oldest_put_at = 0.0

    def put(self, item: T) -> bool:
        """Add ``item``; False, and nothing added, when the outbox is full."""
        items = self._items
        if len(items) >= self._limit:
            return False
        if not items:
            self.oldest_put_at = time.monotonic()
        items.append(item)
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
        items, self._items = self._items, deque()
        return items

    def __len__(self) -> int:
        return len(self._items)
