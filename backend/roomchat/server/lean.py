"""Per-socket stand-ins for the asyncio objects uvicorn's WebSocket protocol keeps: the
same methods, a fraction of the memory (an idle server holds thousands of sockets)."""

from __future__ import annotations

import asyncio
from typing import Any


class Inbox:
    """What uvicorn needs of its per-socket ``asyncio.Queue`` (one reader: the app's
    ``receive``), without the queue's three deques and its ``Event``'s fourth: 3 KiB of
    an idle socket's memory."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)  # holds one or two events: uvicorn pauses reading

    def empty(self) -> bool:
        return not self._items


class Flag:
    """What uvicorn needs of its ``writable`` ``asyncio.Event``, without a deque of
    waiters per socket (created only while someone waits)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        while not self._value:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True
