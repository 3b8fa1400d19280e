"""One room's listener on its own: the memory broker, a store in a list, real connections.

What it promises (``realtime/listener.py``): messages in id order, each once; what the
broker lost (a predecessor that never came, a gap) fetched from the store first; more
missed than it fetches closes the room's sockets with 1012; a failure closes them with 1011.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.broker import GAP
from roomchat.realtime.broker.memory import MemoryBroker
from roomchat.realtime.connection import Connection
from roomchat.realtime.listener import RoomListener
from roomchat.store.schema import Message

TIMEOUT = 5.0
ROOM = "lobby"


@dataclass
class ListStore:
    """The listener's view of the store (``RoomHistory``), over a list; ``broken`` makes
    every read fail."""

    messages: list[Message] = field(default_factory=list)
    broken: Exception | None = None

    def add(self, text: str) -> Message:
        """Store a message (as another worker would) without publishing it."""
        message = Message(
            id=len(self.messages) + 1,
            room=ROOM,
            user_id=1,
            author="alice",
            text=text,
            created_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        self.messages.append(message)
        return message

    async def latest_message_id(self, *, room: str) -> int:
        self._check()
        return max((m.id for m in self.messages if m.room == room), default=0)

    async def list_messages(
        self, *, room: str, limit: int, after: int | None = None
    ) -> list[Message]:
        self._check()
        newer = [m for m in self.messages if m.room == room and m.id > (after or 0)]
        return newer[:limit]

    def _check(self) -> None:
        if self.broken is not None:
            raise self.broken


@dataclass
class Room:
    broker: MemoryBroker
    store: ListStore
    metrics: Metrics
    members: set[Connection]
    listener: RoomListener

    async def publish(self, message: Message, previous_id: int) -> None:
        """What the writer publishes for a stored message."""
        payload = events.room_payload(events.message_event(message), previous_id)
        await self.broker.publish(ROOM, payload)

    async def post(self, text: str) -> Message:
        """Store and publish, naming the message stored before it."""
        message = self.store.add(text)
        await self.publish(message, message.id - 1)
        return message

    def gap(self) -> None:
        """What the Redis broker yields after it lost payloads (the memory one never does)."""
        for subscription in self.broker._subscribers[ROOM]:
            subscription.queue.put_nowait(GAP)  # type: ignore[arg-type]


def joined(room: Room) -> Connection:
    connection = Connection(user="alice", room=ROOM, queue_bytes=1_000_000)
    room.members.add(connection)
    return connection


async def frames(connection: Connection, count: int) -> list[dict[str, object]]:
    """The next ``count`` frames offered to the socket, waiting for them as they come."""
    received: list[dict[str, object]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(received) < count:
            received += [
                json.loads(i.asgi_message["text"]) for i in await connection.outbox.take_all()
            ]
    return received


def texts(received: list[dict[str, object]]) -> list[object]:
    return [frame["text"] for frame in received if frame["type"] == "message"]


async def make_room(store: ListStore, *, catch_up_limit: int = 1000) -> Room:
    broker, metrics, members = MemoryBroker(), Metrics(), set[Connection]()
    listener = RoomListener(
        ROOM,
        members=members,
        broker=broker,
        store=store,
        metrics=metrics,
        catch_up_limit=catch_up_limit,
    )
    return Room(broker, store, metrics, members, listener)


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    made = await make_room(ListStore())
    await made.listener.start()
    yield made
    await made.listener.stop()


def listener_failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("roomchat_backend_errors_total", {"kind": "listener"})
    assert value is not None
    return value


async def test_messages_in_order_and_passing_events_reach_every_member(room: Room) -> None:
    first, second = joined(room), joined(room)
    await room.post("one")
    await room.broker.publish(ROOM, events.room_payload(events.typing_event(ROOM, "bob")))
    await room.post("two")
    for connection in (first, second):
        received = await frames(connection, 3)
        assert [frame["type"] for frame in received] == ["message", "typing", "message"]
        assert texts(received) == ["one", "two"]
    assert room.listener.delivered_up_to == 2


async def test_it_starts_from_the_newest_stored_message() -> None:
    store = ListStore()
    store.add("before the room had sockets here")
    made = await make_room(store)
    await made.listener.start()
    try:
        assert made.listener.delivered_up_to == 1
        connection = joined(made)
        await made.post("after")
        assert texts(await frames(connection, 1)) == ["after"]
    finally:
        await made.listener.stop()


async def test_a_repeated_or_late_publish_is_delivered_once(room: Room) -> None:
    connection = joined(room)
    first = await room.post("once")
    await room.publish(first, 0)  # again: another worker's late publish
    second = await room.post("then this")
    await room.publish(first, 0)  # and older than what was delivered since
    await room.publish(second, first.id)
    await room.post("last")  # all that came before it was routed by now
    assert texts(await frames(connection, 3)) == ["once", "then this", "last"]
    assert len(connection.outbox) == 0


async def test_a_missing_predecessor_is_fetched_from_the_store_first(room: Room) -> None:
    connection = joined(room)
    room.store.add("never published")
    room.store.add("nor this")
    await room.post("names its predecessor")
    received = texts(await frames(connection, 3))
    assert received == ["never published", "nor this", "names its predecessor"]
    # Those the catch-up delivered are not delivered again when published late.
    await room.publish(room.store.messages[0], 0)
    await room.post("next")
    assert texts(await frames(connection, 1)) == ["next"]


async def test_a_gap_is_filled_from_the_store(room: Room) -> None:
    connection = joined(room)
    room.store.add("missed while Redis was away")
    room.gap()
    assert texts(await frames(connection, 1)) == ["missed while Redis was away"]
    assert room.listener.delivered_up_to == 1


async def test_up_to_the_catch_up_limit_is_delivered() -> None:
    made = await make_room(ListStore(), catch_up_limit=3)
    await made.listener.start()
    try:
        connection = joined(made)
        for n in range(2):
            made.store.add(f"missed {n}")
        made.gap()
        assert texts(await frames(connection, 2)) == ["missed 0", "missed 1"]
        assert not connection.ended.done()
    finally:
        await made.listener.stop()


async def test_more_missed_than_the_catch_up_limit_reconnects_the_room_with_1012() -> None:
    made = await make_room(ListStore(), catch_up_limit=3)
    await made.listener.start()
    try:
        first, second = joined(made), joined(made)
        for n in range(3):
            made.store.add(f"missed {n}")
        made.gap()
        for connection in (first, second):
            close = await asyncio.wait_for(connection.ended, TIMEOUT)
            assert close == closecodes.close_for(closecodes.SERVICE_RESTART)
            assert not connection.outbox.take_now()  # they reconnect with since= instead
        # The room goes on from the newest stored id, for whoever joins next.
        assert made.listener.delivered_up_to == 3
        again = joined(made)
        await made.post("after the reconnect")
        assert texts(await frames(again, 1)) == ["after the reconnect"]
    finally:
        await made.listener.stop()


async def test_a_failure_closes_the_sockets_with_1011_and_is_logged_and_counted(
    room: Room, caplog: pytest.LogCaptureFixture
) -> None:
    connection = joined(room)
    room.store.broken = RuntimeError("the store lost its mind")
    with caplog.at_level(logging.ERROR):
        room.gap()  # the catch-up now fails
        close = await asyncio.wait_for(connection.ended, TIMEOUT)
    assert close == closecodes.close_for(closecodes.INTERNAL_ERROR)
    assert "room listener failed" in caplog.text
    assert "the store lost its mind" in caplog.text  # with its traceback
    assert listener_failures(room.metrics) == 1
    assert room.listener.failed
    assert room.listener.delivered_up_to is None  # its cursor is no one's to trust


async def test_failing_to_subscribe_raises_to_the_starter_and_closes_with_1011() -> None:
    store = ListStore(broken=RuntimeError("no store today"))
    made = await make_room(store)
    connection = joined(made)
    with pytest.raises(RuntimeError, match="no store today"):
        await asyncio.wait_for(made.listener.start(), TIMEOUT)
    assert connection.ended.result() == closecodes.close_for(closecodes.INTERNAL_ERROR)
    assert made.listener.failed
    assert ROOM not in made.broker._subscribers  # unsubscribed on the way out
    await made.listener.stop()


async def test_stopping_unsubscribes(room: Room) -> None:
    assert ROOM in room.broker._subscribers
    await room.listener.stop()
    assert ROOM not in room.broker._subscribers
    assert room.listener.delivered_up_to is None
    assert not room.listener.failed
