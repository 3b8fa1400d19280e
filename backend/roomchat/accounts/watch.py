"""A deleted account ends at once: its cached entry, its tokens and its open sockets.

Accounts are deleted outside the server (``roomchat user delete``), so each worker has to
hear of it, without a database round trip per request:
- with Redis, the command publishes on the ``~accounts`` channel (no room can have that
  name) and every worker, on every host, checks at once;
- on the embedded SQLite file (one process, no Redis), the worker watches SQLite's
  ``data_version``, which changes only when another connection commits (the
  command's deletion), never for what this worker's store writes itself.
A check looks up the users this worker has cached or has sockets for, in one query;
whoever is gone (or is now another account of the same name) is forgotten, so their
tokens are refused, and their sockets are closed with 1008 ``session ended``.
Elsewhere (PostgreSQL without Redis), or after a deletion made straight in the
database, the cache's 30 s lifetime still bounds how long a deleted user's token works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from roomchat.accounts.known_users import KnownUsers
from roomchat.realtime import closecodes
from roomchat.realtime.broker import Broker
from roomchat.realtime.manager import RoomManager
from roomchat.store import UserStore
from roomchat.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

#: The broker channel that deletions are announced on: not a valid room name.
ACCOUNTS_CHANNEL = "~accounts"
#: How often the embedded worker looks at SQLite's ``data_version`` (one cheap pragma).
POLL_SECONDS = 0.25
#: Pause before subscribing again after the subscription failed.
RESUBSCRIBE_SECONDS = 1.0


def deletion_notice(username: str) -> str:
    """What ``roomchat user delete`` publishes (a worker only takes it as a cue to check)."""
    return json.dumps({"deleted": username})


class AccountWatch:
    def __init__(
        self,
        *,
        known_users: KnownUsers,
        rooms: RoomManager,
        store: UserStore,
        broker: Broker | None,
    ) -> None:
        """``broker``: listen for announced deletions (Redis); else, on a SQLite file,
        watch its ``data_version``."""
        self._known = known_users
        self._rooms = rooms
        self._store = store
        self._tasks: list[asyncio.Task[None]] = []
        if broker is not None:
            self._tasks.append(asyncio.create_task(self._listen(broker), name="roomchat-accounts"))
        elif isinstance(store, SQLiteStore):
            self._tasks.append(asyncio.create_task(self._poll(store), name="roomchat-accounts"))

    async def check(self) -> None:
        """Forget, and close the sockets of, every user seen here that no longer exists."""
        cached = self._known.cached()
        names = set(cached) | {user.lower() for user in self._rooms.local_users()}
        if not names:
            return
        found = await self._store.find_users(usernames=sorted(names))
        for name in sorted(names):
            now, before = found.get(name), cached.get(name)
            if now is not None and (before is None or before.id == now.id):
                continue
            self._known.forget(name)
            ended = self._rooms.end_user(name, closecodes.SESSION_ENDED)
            log.info("account deleted: sessions ended", extra={"user": name, "sockets": ended})

    async def _listen(self, broker: Broker) -> None:
        while True:
            try:
                async with broker.subscribe(ACCOUNTS_CHANNEL) as subscription:
                    async for _notice in subscription:  # a deletion, or GAP: one missed?
                        await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("watching for deleted accounts failed; again shortly", exc_info=True)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _poll(self, store: SQLiteStore) -> None:
        version = await store.data_version()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                latest = await store.data_version()
                if latest != version:
                    version = latest
                    await self.check()
            except Exception:
                log.warning("checking for deleted accounts failed", exc_info=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
