"""Persistence: keyword-only functions over an ``AsyncSession``, portable SQL only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from roomchat.models import Message, User

__all__ = [
    "Draft",
    "Message",
    "User",
    "UsernameTakenError",
    "add_messages",
    "create_user",
    "get_user",
    "list_messages",
    "list_messages_after",
    "rooms_with_messages",
]


class Draft(NamedTuple):
    """A message about to be stored."""

    user_id: int
    author: str
    text: str


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


async def add_messages(
    session: AsyncSession, *, room: str, drafts: Sequence[Draft]
) -> list[Message]:
    """Store messages in one transaction (a group commit); ids follow the given order."""
    messages = [Message(room=room, user_id=d.user_id, author=d.author, text=d.text) for d in drafts]
    session.add_all(messages)
    await session.commit()
    return messages


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
    if before is not None:
        statement = statement.where(Message.id < before)
    if after is not None:
        statement = statement.where(Message.id > after).order_by(Message.id).limit(limit)
        return list((await session.execute(statement)).scalars())
    statement = statement.order_by(Message.id.desc()).limit(limit)
    return list(reversed((await session.execute(statement)).scalars().all()))


async def list_messages_after(session: AsyncSession, *, room: str, after: int) -> list[Message]:
    """Every message of a room after ``after``, oldest first: recovery after a reconnect."""
    statement = select(Message).where(Message.room == room, Message.id > after).order_by(Message.id)
    return list((await session.execute(statement)).scalars())


async def rooms_with_messages(session: AsyncSession) -> list[str]:
    statement = select(Message.room).distinct().order_by(Message.room)
    return list((await session.execute(statement)).scalars())
