"""The cache of registered users that spares a database round trip per connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat import store
from roomchat.accounts.known_users import KnownUsers
from roomchat.store.engine import create_engine, migrate
from roomchat.store.schema import User
from roomchat.store.through_engine import EngineStore


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_known_users_are_cached_for_the_ttl_only(engine: AsyncEngine) -> None:
    users = EngineStore(engine)
    created = await users.create_user(username="Alice", password_hash="x")
    clock = Clock()
    known = KnownUsers(users, ttl=30, timer=clock)

    assert await known.find("alice") == (created.id, "Alice", created.created_at)
    assert await known.find("nobody") is None
    async with engine.begin() as connection:
        await connection.execute(delete(User))
    clock.now = 29
    assert await known.find("ALICE") == (created.id, "Alice", created.created_at)  # cached
    clock.now = 31
    assert await known.find("alice") is None  # expired: looked up again, and gone


class CountingStore(EngineStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.queries: list[list[str]] = []

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, store.UserRef]:
        self.queries.append(sorted(usernames))
        return await super().find_users(usernames=usernames)


async def test_names_asked_for_at_once_share_one_query(engine: AsyncEngine) -> None:
    counting = CountingStore(engine)
    alice = await counting.create_user(username="Alice", password_hash="x")
    bob = await counting.create_user(username="bob", password_hash="x")
    known = KnownUsers(counting)

    # A burst of handshakes in one turn of the loop: one query for all their names.
    found = await asyncio.gather(*(known.find(n) for n in ["alice", "BOB", "nobody", "Alice"]))
    a, b = (alice.id, "Alice", alice.created_at), (bob.id, "bob", bob.created_at)
    assert found == [a, b, None, a]
    assert counting.queries == [["alice", "bob", "nobody"]]
    # Found names are cached; an unknown one is asked again.
    assert await known.find("bob") == b
    assert await known.find("nobody") is None
    assert counting.queries[1:] == [["nobody"]]


class GatedStore(EngineStore):
    """Holds each lookup until ``gate`` opens; ``started`` says one is under way."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.started, self.gate = asyncio.Event(), asyncio.Event()

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, store.UserRef]:
        self.started.set()
        await self.gate.wait()
        return await super().find_users(usernames=usernames)


async def test_a_forgotten_user_is_looked_up_again_and_a_lookup_under_way_caches_nothing(
    engine: AsyncEngine,
) -> None:
    gated = GatedStore(engine)
    alice = await gated.create_user(username="alice", password_hash="x")
    gated.gate.set()
    known = KnownUsers(gated)
    assert (await known.find("alice")) == (alice.id, "alice", alice.created_at)
    assert set(known.cached()) == {"alice"}
    known.forget("ALICE")
    assert known.cached() == {}
    # A lookup that began before a forget answers, but does not cache its answer.
    gated.gate.clear()
    gated.started.clear()
    lookup = asyncio.ensure_future(known.find("alice"))
    await asyncio.wait_for(gated.started.wait(), 5)
    known.forget("alice")
    gated.gate.set()
    assert (await asyncio.wait_for(lookup, 5)) is not None
    assert known.cached() == {}
    assert (await known.find("alice")) is not None  # asked again, and now cached
    assert set(known.cached()) == {"alice"}
