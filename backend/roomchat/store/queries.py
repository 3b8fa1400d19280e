"""Persistence: keyword-only functions over an ``AsyncSession``, portable SQL only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from roomchat.store.schema import MAX_MESSAGE_ID, Message, User

__all__ = [
    "Draft",
    "Message",
    "StoredBatch",
    "User",
    "UserRef",
    "UsernameTakenError",
    "add_messages",
    "add_messages_to_rooms",
    "create_user",
    "delete_user",
    "find_users",
    "get_user",
    "latest_message_id",
    "list_messages",
    "rooms_with_messages",
]


class Draft(NamedTuple):
    """A message about to be stored."""

    user_id: int
    author: str
    text: str


class StoredBatch(NamedTuple):
    """Messages just stored, and the id of the room's message before the first (0: none)."""

    previous_id: int
    messages: list[Message]


class UserRef(NamedTuple):
    """A registered user as the token check needs it: tokens issued before ``created_at``
    belonged to an earlier account of the same name."""

    id: int
    username: str
    created_at: datetime


class UsernameTakenError(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
        self.username = username


async def create_user(session: AsyncSession, *, username: str, password_hash: str) -> User:
    user = User(username=username, password_hash=password_hash)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise UsernameTakenError(username) from None
    return user


async def get_user(session: AsyncSession, *, username: str) -> User | None:
    """Find a user by name, ignoring case."""
    statement = select(User).where(func.lower(User.username) == username.lower())
    return (await session.execute(statement)).scalar_one_or_none()


async def delete_user(session: AsyncSession, *, username: str) -> bool:
    """Delete a user (by name, ignoring case); their messages stay, without ``user_id``."""
    statement = delete(User).where(func.lower(User.username) == username.lower())
    result = await session.execute(statement)
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def find_users(session: AsyncSession, *, usernames: Sequence[str]) -> dict[str, UserRef]:
    """``{lowercased name: UserRef}`` for those of ``usernames`` that exist."""
    wanted = sorted({name.lower() for name in usernames})
    statement = select(User.id, User.username, User.created_at).where(
        func.lower(User.username).in_(wanted)
    )
    return {
        name.lower(): UserRef(user_id, name, created)
        for user_id, name, created in await session.execute(statement)
    }


async def add_messages(session: AsyncSession, *, room: str, drafts: Sequence[Draft]) -> StoredBatch:
    """Store one room's messages in one transaction; ids follow the given order."""
    return (await add_messages_to_rooms(session, drafts={room: drafts}))[room]


async def add_messages_to_rooms(
    session: AsyncSession, *, drafts: Mapping[str, Sequence[Draft]]
) -> dict[str, StoredBatch]:
    """Store messages for several rooms in one transaction (a group commit).

    Within a room, ids follow the given order. A room's writers take turns (on every worker
    and host), so a room's messages commit in id order and each batch knows the message
    before it: listeners use that link to notice a message they never received.
    PostgreSQL needs a per-room advisory lock for this (taken in name order, so two
    writers never wait on each other crosswise); SQLite has one writer at a time anyway,
    and the insert below makes this transaction it.
    """
    rooms = sorted(drafts)
    if session.get_bind().dialect.name == "postgresql":
        for room in rooms:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"roomchat.room:{room}"},
            )
    messages = {
        room: [
            Message(room=room, user_id=d.user_id, author=d.author, text=d.text)
            for d in drafts[room]
        ]
        for room in rooms
    }
    session.add_all([message for room in rooms for message in messages[room]])
    await session.flush()
    # Every id just taken is newer than any committed message of these (locked) rooms.
    first_new = min(batch[0].id for batch in messages.values())
    previous = (
        select(Message.room, func.max(Message.id))
        .where(Message.room.in_(rooms), Message.id < first_new)
        .group_by(Message.room)
    )
    previous_ids = {room: last for room, last in await session.execute(previous)}
    await session.commit()
    return {room: StoredBatch(previous_ids.get(room, 0), messages[room]) for room in rooms}


async def latest_message_id(session: AsyncSession, *, room: str) -> int:
    """The id of the room's newest message (0 when it has none)."""
    statement = select(func.max(Message.id)).where(Message.room == room)
    return (await session.execute(statement)).scalar_one_or_none() or 0


async def list_messages(
    session: AsyncSession,
    *,
    room: str,
    limit: int,
    before: int | None = None,
    after: int | None = None,
) -> list[Message]:
    """A page of a room's messages, oldest first, between the ids given.

    With ``after``, the first ``limit`` messages after it (paging forward); otherwise the
    last ``limit`` messages (paging back). ``before`` bounds either from above.
    """
    statement = select(Message).where(Message.room == room)
    if before is not None:  # past the largest id there can be: the same as no bound
        statement = statement.where(Message.id < min(before, MAX_MESSAGE_ID))
    if after is not None:
        statement = (
            statement.where(Message.id > min(after, MAX_MESSAGE_ID))
            .order_by(Message.id)
            .limit(limit)
        )
        return list((await session.execute(statement)).scalars())
    statement = statement.order_by(Message.id.desc()).limit(limit)
    return list(reversed((await session.execute(statement)).scalars().all()))


async def rooms_with_messages(
    session: AsyncSession, *, limit: int, after: str | None = None
) -> list[str]:
    """The first ``limit`` names of rooms with messages, after ``after``, in byte order
    (Python's ``sorted``: PostgreSQL is told ``COLLATE "C"``, SQLite's default is binary)."""
    room = Message.room
    if session.get_bind().dialect.name == "postgresql":
        room = room.collate("C")  # type: ignore[assignment]
    statement = select(room).distinct().order_by(room).limit(limit)
    if after is not None:
        statement = statement.where(room > after)
    return list((await session.execute(statement)).scalars())
