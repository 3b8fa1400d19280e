"""The cache of registered users that spares a database round trip per connect."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from roomchat import store
from roomchat.db import create_engine, create_session_factory, create_tables
from roomchat.known_users import KnownUsers
from roomchat.message_store import SessionStore
from roomchat.models import User


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_known_users_are_cached_for_the_ttl_only(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await create_tables(engine)
    sessions = create_session_factory(engine)
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
    await engine.dispose()
