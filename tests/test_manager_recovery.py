"""The room manager, its listeners and the writer together: ids ascending, nothing
missed, nothing twice (``test_room_listener.py`` drives a listener on its own).

Another worker may publish late, die between storing and publishing, or Redis may drop
payloads; here the memory broker stands in, and the store is written to directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.broker import GAP
from roomchat.realtime.broker.memory import MemoryBroker, MemoryPresence
from roomchat.realtime.connection import Connection
from roomchat.realtime.manager import RoomManager
from roomchat.realtime.writer import MessageWriter, StoreUnavailableError
from roomchat.store.engine import create_engine, create_session_factory, create_tables
from roomchat.store.messages import MessageStore, SessionStore
from roomchat.store.sqlite import SQLiteStore
from tests.waiting import eventually

TIMEOUT = 5.0


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await create_tables(engine)
    factory = create_session_factory(engine)
    async with factory() as session:
        await store.create_user(session, username="alice", password_hash="-")
    yield factory
    await engine.dispose()


@pytest.fixture(params=["sqlite3", "sessions"])
async def message_store(
    request: pytest.FixtureRequest, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[MessageStore]:
    """Both ways the manager reads and writes: its own sqlite3 thread, or SQLAlchemy."""
    if request.param == "sqlite3":
        opened: MessageStore = await SQLiteStore.open(str(tmp_path / "store.db"))
    else:
        opened = SessionStore(sessions)
    yield opened
    await opened.close()


@dataclass(frozen=True)
class Rooms:
    """What ``main.py`` builds for the chat: membership, the writer, and the broker."""

    manager: RoomManager
    writer: MessageWriter
    broker: MemoryBroker
    metrics: Metrics

    async def post(self, room: str, draft: store.Draft) -> store.Message:
        return await self.writer.submit(room, draft)


@pytest.fixture
async def rooms(message_store: MessageStore) -> AsyncIterator[Rooms]:
    broker, metrics = MemoryBroker(), Metrics()
    manager = RoomManager(
        broker=broker, presence=MemoryPresence(), store=message_store, metrics=metrics
    )
    writer = MessageWriter(broker=broker, store=message_store, metrics=metrics)
    yield Rooms(manager, writer, broker, metrics)
    await manager.close()
    await writer.close()


async def messages(connection: Connection, count: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(received) < count:
            for item in await connection.outbox.take_all():
                if item.message_id is not None:
                    received.append(json.loads(item.asgi_message["text"]))
    return received


async def stored_elsewhere(sessions: async_sessionmaker[AsyncSession], text: str) -> store.Message:
    """A message another worker stored and never published (it died, or Redis did)."""
    async with sessions() as session:
        batch = await store.add_messages(
            session, room="lobby", drafts=[store.Draft(1, "bob", text)]
        )
    return batch.messages[0]


def draft(text: str) -> store.Draft:
    return store.Draft(1, "alice", text)


async def test_a_message_never_published_is_fetched_before_the_next_one(
    rooms: Rooms, sessions: async_sessionmaker[AsyncSession]
) -> None:
    manager = rooms.manager
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(connection):
        await rooms.post("lobby", draft("first"))
        await stored_elsewhere(sessions, "never published")
        await rooms.post("lobby", draft("next"))
        received = await messages(connection, 3)
    assert [m["text"] for m in received] == ["first", "never published", "next"]
    assert [m["id"] for m in received] == sorted(m["id"] for m in received)


async def test_a_gap_is_filled_from_the_store(
    rooms: Rooms, sessions: async_sessionmaker[AsyncSession]
) -> None:
    manager, broker = rooms.manager, rooms.broker
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(connection):
        await stored_elsewhere(sessions, "missed while Redis was away")
        for subscription in broker._subscribers["lobby"]:
            subscription.queue.put_nowait(GAP)  # type: ignore[arg-type]
        received = await messages(connection, 1)
    assert [m["text"] for m in received] == ["missed while Redis was away"]


async def test_a_late_or_repeated_publish_is_not_delivered_twice(
    rooms: Rooms, sessions: async_sessionmaker[AsyncSession]
) -> None:
    manager, broker = rooms.manager, rooms.broker
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(connection):
        first = await rooms.post("lobby", draft("once"))
        late = events.room_payload(events.message_event(first), 0)
        await broker.publish("lobby", late)  # again, late
        await rooms.post("lobby", draft("then this"))
        received = await messages(connection, 2)
    assert [m["text"] for m in received] == ["once", "then this"]


async def test_a_message_the_database_refuses_does_not_fail_the_others_in_its_batch(
    rooms: Rooms,
) -> None:
    manager = rooms.manager
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(connection):
        # Submitted in one turn, so the writer stores them in one transaction; the author
        # of the second does not exist (deleted after connecting): a foreign-key error.
        first = rooms.writer.submit("lobby", draft("before"))
        orphan = rooms.writer.submit("lobby", store.Draft(999, "ghost", "from a deleted user"))
        last = rooms.writer.submit("other", draft("another room"))
        stored = await asyncio.wait_for(asyncio.gather(first, last), TIMEOUT)
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(orphan, TIMEOUT)
        received = await messages(connection, 1)
    assert [m.text for m in stored] == ["before", "another room"]
    assert [m["text"] for m in received] == ["before"]


async def test_a_failed_listener_closes_its_sockets_with_1011_and_is_logged(
    rooms: Rooms,
    message_store: MessageStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, broker = rooms.manager, rooms.broker
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(connection):

        async def broken(**_kwargs: Any) -> list[store.Message]:
            raise RuntimeError("the store lost its mind")

        monkeypatch.setattr(message_store, "list_messages", broken)
        for subscription in broker._subscribers["lobby"]:  # the listener's catch-up now fails
            subscription.queue.put_nowait(GAP)  # type: ignore[arg-type]
        close = await asyncio.wait_for(connection.ended, TIMEOUT)
    assert close == closecodes.close_for(closecodes.INTERNAL_ERROR)
    assert "room listener failed" in caplog.text
    # A new socket gets a new listener: the room is not dead for good.
    monkeypatch.undo()
    again = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    async with manager.join(again):
        await rooms.post("lobby", draft("the room goes on"))
        assert [m["text"] for m in await messages(again, 1)] == ["the room goes on"]


async def test_a_message_both_replayed_and_delivered_live_reaches_the_socket_once(
    rooms: Rooms,
) -> None:
    """Posted after the socket joined but before its replay was read: the replay has it,
    and so does the outbox. The outbox's copy is skipped; what follows is delivered."""
    manager = rooms.manager
    connection = Connection(user="alice", room="lobby", queue_bytes=1_000_000)
    sent: list[dict[str, Any]] = []
    after_sent = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:  # the server's ASGI send
        frame = json.loads(message["text"])
        sent.append(frame)
        if frame.get("text") == "after":
            after_sent.set()

    async with manager.join(connection):
        overlap = await rooms.post("lobby", draft("in both"))
        # Queued live, after the socket's own join event.
        await eventually(lambda: len(connection.outbox) == 2, TIMEOUT)
        replay = await manager.replay("lobby", since=0, limit=50, max_chars=1_000_000)
        assert [json.loads(m)["id"] for m in replay.messages] == [overlap.id]  # and replayed
        assert replay.latest == overlap.id
        connection.start_sending(
            replayed_up_to=replay.latest, sink=None, send=send, metrics=rooms.metrics
        )
        await rooms.post("lobby", draft("after"))
        await asyncio.wait_for(after_sent.wait(), TIMEOUT)
        await connection.stop_sending()
    # The queued copy would have gone out first, ahead of "after".
    assert [frame["text"] for frame in sent if frame["type"] == "message"] == ["after"]


async def test_posts_queued_at_shutdown_are_stored_before_it_ends(
    rooms: Rooms, message_store: MessageStore
) -> None:
    queued = [rooms.writer.submit("lobby", draft(f"queued {n}")) for n in range(5)]
    await rooms.writer.close()
    assert all(post.done() and not post.exception() for post in queued)
    stored = await message_store.list_messages(room="lobby", limit=10)
    assert [m.text for m in stored] == [f"queued {n}" for n in range(5)]


async def test_a_writer_bug_fails_its_batch_instead_of_leaving_it_waiting(
    rooms: Rooms,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = rooms.broker
    real_publish = broker.publish

    async def buggy_publish(channel: str, payload: str) -> None:
        monkeypatch.setattr(broker, "publish", real_publish)
        raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr(broker, "publish", buggy_publish)
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(rooms.post("lobby", draft("hit by the bug")), TIMEOUT)
    assert "the message writer failed" in caplog.text
    after = await asyncio.wait_for(rooms.post("lobby", draft("the writer goes on")), TIMEOUT)
    assert after.text == "the writer goes on"
