"""Registered users seen lately, so a reconnecting socket costs no database round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cachetools import TTLCache

from roomchat.store import UserRef, UserStore

Found = UserRef | None


class KnownUsers:
    """Caches ``name -> UserRef`` (id, canonical name, creation) for ``ttl`` seconds.

    Only positive answers are kept: an unknown name is always looked up. A deleted user
    is forgotten at once when the deletion is heard of (``forget``, from
    ``account_watch``); otherwise their token keeps working at most ``ttl`` seconds after
    it was last checked.

    Names not in the cache are looked up together: every handshake that asks during one
    turn of the event loop waits on the same query (a burst of connects costs one round
    trip per turn, not one per socket).
    """

    def __init__(
        self,
        store: UserStore,
        *,
        ttl: float = 30.0,
        size: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._users: TTLCache[str, UserRef] = TTLCache(size, ttl, timer=timer)
        self._wanted: dict[str, asyncio.Future[Found]] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        self._forgets = 0  # a lookup that began before a forget caches nothing

    async def find(self, name: str) -> Found:
        key = name.lower()
        known = self._users.get(key)
        if known is not None:
            return known
        wanted = self._wanted.get(key)
        if wanted is None:
            loop = asyncio.get_running_loop()
            if not self._wanted:
                loop.call_soon(self._look_up_wanted)
            wanted = self._wanted[key] = loop.create_future()
        # Shielded: a handshake given up on must not cancel the others' answer.
        return await asyncio.shield(wanted)

    def cached(self) -> dict[str, UserRef]:
        """What is cached now, by lowercased name."""
        return dict(self._users.items())

    def forget(self, name: str) -> None:
        """Drop ``name`` (a deleted account). A lookup already under way still answers
        (as a check made just before the deletion would) but caches nothing."""
        self._forgets += 1
        self._users.pop(name.lower(), None)

    def _look_up_wanted(self) -> None:
        wanted, self._wanted = self._wanted, {}
        lookup = asyncio.create_task(self._look_up(wanted))
        self._lookups.add(lookup)  # held until done: the loop keeps only weak references
        lookup.add_done_callback(self._lookups.discard)

    async def _look_up(self, wanted: dict[str, asyncio.Future[Found]]) -> None:
        forgets = self._forgets
        try:
            found = await self._store.find_users(usernames=list(wanted))
        except Exception as exc:
            for future in wanted.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in wanted.items():
            user = found.get(key)
            if user is not None and forgets == self._forgets:
                self._users[key] = user
            if not future.done():
                future.set_result(user)
