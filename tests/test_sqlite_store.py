"""The SQLite store's own thread reads and writes exactly what SQLAlchemy does.

The real-time paths store through ``SQLiteStore`` (sqlite3 in one thread) while the HTTP
API reads through SQLAlchemy, so a row written by either must read back the same by both.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime.broker.memory import MemoryBroker
from roomchat.realtime.writer import MessageWriter, StoreUnavailableError
from roomchat.store.engine import create_engine, create_session_factory, migrate
from roomchat.store.messages import SessionStore, open_message_store
from roomchat.store.schema import Message
from roomchat.store.sqlite import Checkpointer, SQLiteStore

FIELDS = ("id", "room", "user_id", "author", "text", "created_at")


@dataclass
class Both:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    fast: SQLiteStore
    path: Path


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[Both]:
    path = tmp_path / "roomchat.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        await store.create_user(session, username="Alice", password_hash="hash-a")
        await store.create_user(session, username="bob", password_hash="hash-b")
    opened = await open_message_store(engine, sessions)
    assert isinstance(opened, SQLiteStore)
    yield Both(engine, sessions, opened, path)
    await opened.close()
    await engine.dispose()


def fields(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(m, name) for name in FIELDS) for m in messages]


async def read_back(sessions: async_sessionmaker[AsyncSession], room: str) -> list[Message]:
    async with sessions() as session:
        return await store.list_messages(session, room=room, limit=100)


async def test_written_by_the_thread_read_by_sqlalchemy(both: Both) -> None:
    stored = await both.fast.add_messages_to_rooms(
        drafts={
            "lobby": [store.Draft(1, "Alice", "one"), store.Draft(2, "bob", "two ✓")],
            "attic": [store.Draft(2, "bob", "three")],
        }
    )
    assert stored["attic"].previous_id == 0
    assert stored["lobby"].previous_id == 0
    for room in ("lobby", "attic"):
        written = stored[room].messages
        assert fields(await read_back(both.sessions, room)) == fields(written)
        assert fields(await both.fast.list_messages(room=room, limit=100)) == fields(written)
    created_at = stored["lobby"].messages[0].created_at
    assert created_at.tzinfo == UTC
    # Rooms in name order, each room's ids in the order given.
    assert [m.id for m in stored["attic"].messages + stored["lobby"].messages] == [1, 2, 3]
    with sqlite3.connect(both.path) as raw:
        (text,) = raw.execute("SELECT created_at FROM messages WHERE id = 1").fetchone()
    assert text == created_at.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's own format


async def test_written_by_sqlalchemy_read_by_the_thread(both: Both) -> None:
    async with both.sessions() as session:
        batch = await store.add_messages(
            session, room="lobby", drafts=[store.Draft(1, "Alice", f"m{n}") for n in range(5)]
        )
        expected = fields(batch.messages)
        assert fields(await store.list_messages(session, room="lobby", limit=2, before=5)) == (
            fields(await both.fast.list_messages(room="lobby", limit=2, before=5))
        )
        assert fields(await store.list_messages(session, room="lobby", limit=2, after=1)) == (
            fields(await both.fast.list_messages(room="lobby", limit=2, after=1, before=10**30))
        )
        users = await store.find_users(session, usernames=["ALICE", "carol"])
    assert fields(await both.fast.list_messages(room="lobby", limit=50)) == expected
    assert fields(await both.fast.list_messages(room="lobby", after=2, limit=9)) == expected[2:]
    assert await both.fast.list_messages(room="lobby", after=2**70, limit=9) == []
    assert await both.fast.latest_message_id(room="lobby") == batch.messages[-1].id
    assert await both.fast.latest_message_id(room="empty") == 0
    found = await both.fast.find_users(usernames=["aLiCe", "carol"])
    assert found == users
    assert list(found) == ["alice"]
    assert found["alice"][1] == "Alice"  # the name as registered


async def test_each_batch_knows_the_message_before_it(both: Both) -> None:
    async with both.sessions() as session:
        first = await store.add_messages(session, room="lobby", drafts=[store.Draft(1, "a", "x")])
    batches = [
        await both.fast.add_messages_to_rooms(
            drafts={"lobby": [store.Draft(1, "a", "y"), store.Draft(1, "a", "z")]}
        ),
        await both.fast.add_messages_to_rooms(
            drafts={"lobby": [store.Draft(1, "a", "w")], "attic": [store.Draft(1, "a", "v")]}
        ),
    ]
    lobby = [batch["lobby"] for batch in batches]
    assert lobby[0].previous_id == first.messages[0].id
    assert lobby[1].previous_id == lobby[0].messages[-1].id
    assert batches[1]["attic"].previous_id == 0
    texts = [m.text for m in await read_back(both.sessions, "lobby")]
    assert texts == ["x", "y", "z", "w"]


async def test_two_stores_on_one_file_keep_each_room_linked(both: Both) -> None:
    """Two processes' writers (here two stores) interleave; each batch still names the
    message just before it in its room, as listeners on every worker rely on."""
    other = await SQLiteStore.open(str(both.path))
    rooms = ("a", "b", "c")

    async def write(writer: SQLiteStore, n: int) -> dict[str, store.StoredBatch]:
        drafts = {
            room: [store.Draft(1, "a", f"{n}-{k}") for k in range(n % 3 + 1)] for room in rooms
        }
        return await writer.add_messages_to_rooms(drafts=drafts)

    results = await asyncio.gather(*(write(both.fast if n % 2 else other, n) for n in range(60)))
    await other.close()
    for room in rooms:
        ids = [m.id for m in await both.fast.list_messages(room=room, after=0, limit=1000)]
        for result in results:
            batch = result[room]
            first = ids.index(batch.messages[0].id)
            assert batch.previous_id == (ids[first - 1] if first else 0)
            assert ids[first : first + len(batch.messages)] == [m.id for m in batch.messages]


async def test_a_failed_write_is_rolled_back_and_reported_to_senders(both: Both) -> None:
    with sqlite3.connect(both.path) as raw:  # a real SQLite error, raised in the thread
        raw.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN "
            "SELECT RAISE(ABORT, 'disk I/O error, say'); END"
        )
    metrics = Metrics()
    writer = MessageWriter(broker=MemoryBroker(), store=both.fast, metrics=metrics)
    posts = [writer.submit("lobby", store.Draft(1, "Alice", text)) for text in ("a", "b")]
    for post in posts:
        with pytest.raises(StoreUnavailableError):
            await post
    errors = metrics.registry.get_sample_value("roomchat_backend_errors_total", {"kind": "store"})
    assert errors == 2  # one per message that could not be stored (each was tried alone)
    with sqlite3.connect(both.path) as raw:
        raw.execute("DROP TRIGGER refuse")
    # Nothing half-written, and the thread's connection is usable again.
    assert await read_back(both.sessions, "lobby") == []
    stored = await writer.submit("lobby", store.Draft(1, "Alice", "after"))
    assert [m.id for m in await read_back(both.sessions, "lobby")] == [stored.id]
    await writer.close()


async def test_an_in_memory_database_keeps_to_sqlalchemy() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    opened = await open_message_store(engine, create_session_factory(engine))
    assert isinstance(opened, SessionStore)
    await opened.close()
    await engine.dispose()


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_the_wal_stays_bounded_under_steady_writes(both: Both) -> None:
    # 3,000 one-message transactions are ~7,500 WAL pages (30 MB) when the WAL never
    # starts again (as with only passive checkpoints from another connection), 16 MiB with
    # only the committing thread's safety-net checkpoints; at a steady 2,000/s (gaps
    # between commits, as a server has) the checkpointer keeps it near 1 MiB. History reads
    # through SQLAlchemy in between must not keep it from starting again.
    checkpointer = both.fast.checkpointer
    loop = asyncio.get_running_loop()
    start = loop.time()
    largest = 0
    for n in range(3000):
        await both.fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
        largest = max(largest, wal_bytes(both.path))
        if n % 200 == 0:
            assert len(await read_back(both.sessions, "lobby")) == min(n + 1, 100)
        await asyncio.sleep(start + n / 2000 - loop.time())  # the pace, not a wait for it
    assert largest < 8 * 2**20
    assert checkpointer.passes > 0
    assert checkpointer.failures == 0


async def test_closing_the_store_stops_its_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "roomchat.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    async with create_session_factory(engine)() as session:
        await store.create_user(session, username="Alice", password_hash="hash-a")
    await engine.dispose()
    fast = await SQLiteStore.open(str(path))
    checkpointer = fast.checkpointer
    assert checkpointer.running
    await fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    await fast.close()  # while the checkpointer waits for commits to gather, or copies
    assert not checkpointer.running
    assert checkpointer.failures == 0
    assert wal_bytes(path) == 0  # the last connection to close checkpointed and removed it


async def test_a_failed_checkpoint_is_logged_and_counted(
    both: Both, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_self: Checkpointer, _db: sqlite3.Connection) -> int:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Checkpointer, "_copy", broken)
    failed = threading.Event()
    both.fast.checkpointer.on_error = failed.set
    await both.fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    assert await asyncio.to_thread(failed.wait, 10.0)
    assert "SQLite checkpoint" in caplog.text
    # Writing goes on; the checkpointer stays up for the next round.
    await both.fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    assert both.fast.checkpointer.running
