"""The store the real-time paths use, chosen once at startup: ``open_message_store``.

Storing a message, finding connecting sockets' users and a room's newest id, and the
history a joining socket gets run on every message or connect. On a SQLite file they go
through ``SQLiteStore`` (one thread, the ``sqlite3`` module, one hop per call); anywhere
else (PostgreSQL, or an in-memory SQLite that no second connection could see) through
``SessionStore``: the functions of ``store.py`` over SQLAlchemy sessions. The HTTP API and
accounts use ``store.py`` directly; both paths read and write the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from roomchat import store
from roomchat.store.schema import Message
from roomchat.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)


class MessageStore(Protocol):
    """The hot paths' queries; each is the ``store.py`` function of the same name."""

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, store.UserRef]: ...

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[store.Draft]]
    ) -> dict[str, store.StoredBatch]: ...

    async def latest_message_id(self, *, room: str) -> int: ...

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]: ...

    async def close(self) -> None: ...


class SessionStore:
    """``store.py`` through SQLAlchemy's async sessions: PostgreSQL, or SQLite in memory."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, store.UserRef]:
        async with self._sessions() as session:
            return await store.find_users(session, usernames=usernames)

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[store.Draft]]
    ) -> dict[str, store.StoredBatch]:
        async with self._sessions() as session:
            return await store.add_messages_to_rooms(session, drafts=drafts)

    async def latest_message_id(self, *, room: str) -> int:
        async with self._sessions() as session:
            return await store.latest_message_id(session, room=room)

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        async with self._sessions() as session:
            return await store.list_messages(
                session, room=room, limit=limit, before=before, after=after
            )

    async def close(self) -> None:
        """The sessions' engine is disposed of by whoever made it."""


async def open_message_store(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> MessageStore:
    """``SQLiteStore`` on the engine's own file when it is a SQLite file, else ``SessionStore``."""
    if engine.dialect.name != "sqlite":
        return SessionStore(sessions)
    args: Any
    args, options = engine.dialect.create_connect_args(engine.url)
    path = args[0]
    if path == ":memory:" or options.get("uri"):
        # A second connection would not see an in-memory database (nor, maybe, a URI's).
        log.info("SQLite at %s: the real-time paths use SQLAlchemy's sessions", path)
        return SessionStore(sessions)
    return await SQLiteStore.open(path)
