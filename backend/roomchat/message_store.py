"""The store the real-time paths use, chosen once at startup: ``open_message_store``.

Storing a message, finding a connecting socket's user and a room's newest id, and the
history a joining socket gets run on every message or connect, so they go through one
object that can take a faster way where the database allows one. ``SessionStore`` is
the functions of ``store.py`` over SQLAlchemy sessions. The HTTP API and accounts use
``store.py`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from roomchat import store
from roomchat.models import Message, User


class MessageStore(Protocol):
    """The hot paths' queries; each is the ``store.py`` function of the same name."""

    async def get_user(self, *, username: str) -> User | None: ...

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[store.Draft]]
    ) -> dict[str, store.StoredBatch]: ...

    async def latest_message_id(self, *, room: str) -> int: ...

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]: ...

    async def list_messages_after(self, *, room: str, after: int) -> list[Message]: ...

    async def close(self) -> None: ...


class SessionStore:
    """``store.py`` through SQLAlchemy's async sessions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get_user(self, *, username: str) -> User | None:
        async with self._sessions() as session:
            return await store.get_user(session, username=username)

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

    async def list_messages_after(self, *, room: str, after: int) -> list[Message]:
        async with self._sessions() as session:
            return await store.list_messages_after(session, room=room, after=after)

    async def close(self) -> None:
        """The sessions' engine is disposed of by whoever made it."""


async def open_message_store(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> MessageStore:
    """The store for the engine's database."""
    return SessionStore(sessions)
