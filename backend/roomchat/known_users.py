"""Registered users seen lately, so a reconnecting socket costs no database round trip."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

from roomchat.message_store import MessageStore


class KnownUsers:
    """Caches ``name -> (id, canonical name)`` of registered users for ``ttl`` seconds.

    Only positive answers are kept: an unknown name is always looked up, and a deleted
    user's token keeps working at most ``ttl`` seconds after it was last checked.
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        ttl: float = 30.0,
        size: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._users: TTLCache[str, tuple[int, str]] = TTLCache(size, ttl, timer=timer)

    async def find(self, name: str) -> tuple[int, str] | None:
        key = name.lower()
        known = self._users.get(key)
        if known is None:
            user = await self._store.get_user(username=name)
            if user is None:
                return None
            known = self._users[key] = (user.id, user.username)
        return known
