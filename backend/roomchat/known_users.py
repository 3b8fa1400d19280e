"""Registered users seen lately, so a reconnecting socket costs no database round trip."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from roomchat import store


class KnownUsers:
    """Caches ``name -> (id, canonical name)`` of registered users for ``ttl`` seconds.

    Only positive answers are kept: an unknown name is always looked up, and a deleted
    user's token keeps working at most ``ttl`` seconds after it was last checked.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 30.0,
        size: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._users: TTLCache[str, tuple[int, str]] = TTLCache(size, ttl, timer=timer)

    async def find(self, name: str) -> tuple[int, str] | None:
        key = name.lower()
        known = self._users.get(key)
        if known is None:
            async with self._sessions() as session:
                user = await store.get_user(session, username=name)
            if user is None:
                return None
            known = self._users[key] = (user.id, user.username)
        return known
