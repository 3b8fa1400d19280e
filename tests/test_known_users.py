"""The cache of registered users that spares a database round trip per connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from roomchat import store
from roomchat.db import create_engine, create_session_factory, create_tables
from roomchat.known_users import KnownUsers
from roomchat.message_store import SessionStore
from roomchat.models import User


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await create_tables(engine)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_known_users_are_cached_for_the_ttl_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        created = await store.create_user(session, username="Alice", password_hash="x")
    clock = Clock()
    known = KnownUsers(SessionStore(sessions), ttl=30, timer=clock)

    assert await known.find("alice") == (created.id, "Alice")
    assert await known.find("nobody") is None
    async with sessions() as session:
        await session.execute(delete(User))
        await session.commit()
    clock.now = 29
    assert await known.find("ALICE") == (created.id, "Alice")  # cached
    clock.now = 31
    assert await known.find("alice") is None  # expired: looked up again, and gone


class CountingStore(SessionStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.queries: list[list[str]] = []

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, tuple[int, str]]:
        self.queries.append(sorted(usernames))
        return await super().find_users(usernames=usernames)


async def test_names_asked_for_at_once_share_one_query(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        alice = await store.create_user(session, username="Alice", password_hash="x")
        bob = await store.create_user(session, username="bob", password_hash="x")
    counting = CountingStore(sessions)
    known = KnownUsers(counting)

    # A burst of handshakes in one turn of the loop: one query for all their names.
    found = await asyncio.gather(*(known.find(n) for n in ["alice", "BOB", "nobody", "Alice"]))
    assert found == [(alice.id, "Alice"), (bob.id, "bob"), None, (alice.id, "Alice")]
    assert counting.queries == [["alice", "bob", "nobody"]]
    # Found names are cached; an unknown one is asked again.
    assert await known.find("bob") == (bob.id, "bob")
    assert await known.find("nobody") is None
    assert counting.queries[1:] == [["nobody"]]
