"""Member lists after a Redis restart: every socket's list is right again, unprompted.

Two workers share a private redis-server, which is killed and started again empty. While
it is away one user on each worker leaves and another joins; nobody reconnects. Once it
is back, every socket's list (its presence frame, then the join and leave events after
it) must equal ``GET /members`` on both workers, which must name exactly who is there,
and nobody who stayed may have been shown leaving in between. Below it, the two pieces
that takes: the broker saying when every room is subscribed again, and a listener that
sends the fresh frame in order with the events around it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from roomchat.accounts.security import create_access_token
from roomchat.ops.metrics import Metrics
from roomchat.ops.redis import redis_client
from roomchat.realtime import events
from roomchat.realtime.broker import GAP, BrokerUnavailableError
from roomchat.realtime.broker.memory import MemoryBroker
from roomchat.realtime.broker.redis import RedisBroker
from roomchat.realtime.connection import Connection
from roomchat.realtime.listener import RoomListener
from roomchat.store.schema import Message
from tests import services
from tests.helpers import PASSWORD, TEST_SECRET
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import open_socket, recv, room_url

TIMEOUT = 20.0
STAYING = {"amy": 0, "ben": 1}  # user -> the worker their socket is on (A is 0, B is 1)
LEAVING = {"lea": 0, "leo": 1}  # close their socket while Redis is away
JOINING = {"jon": 0, "joy": 1}  # open theirs while Redis is away


class Watcher:
    """A socket's view of the room: its presence frame, then each join and leave."""

    def __init__(self, ws: ClientConnection, members: list[str]) -> None:
        self.ws = ws
        self.members = set(members)
        self.presence_frames = 0
        self.lost: set[str] = set()  # users once missing from the list (see ``watch_for``)
        self._watched: set[str] = set()
        self.task = asyncio.create_task(self._read())

    def watch_for(self, users: set[str]) -> None:
        """From now on, note any of ``users`` that drops out of the list."""
        self._watched = users

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "presence":
                self.presence_frames += 1
                self.members = set(frame["members"])
            elif frame["type"] == "join":
                self.members.add(frame["user"])
            elif frame["type"] == "leave":
                self.members.discard(frame["user"])
            self.lost |= self._watched - self.members


async def open_sockets(client: httpx.AsyncClient, *servers: LiveServer) -> list[int]:
    """Each worker's open room sockets, as its metrics count them."""
    counts = []
    for server in servers:
        text = (await client.get(f"{server.http_url}/metrics")).text
        found = re.search(r"^roomchat_open_sockets (\S+)$", text, re.MULTILINE)
        assert found is not None
        counts.append(int(float(found.group(1))))
    return counts


async def each_knows_the_other(redis_url: str) -> None:
    """Wait until both workers have heartbeated since both were in Redis: each heartbeat
    tells a worker who its peers are (``recover`` waits for those it knows)."""
    redis = redis_client(redis_url)
    key = "presence:presence:workers"
    try:

        async def both_registered() -> bool:
            return await redis.zcard(key) == 2

        await eventually(both_registered, TIMEOUT)

        async def deadlines() -> dict[str, float]:
            return dict(
                cast(list[tuple[str, float]], await redis.zrange(key, 0, -1, withscores=True))
            )

        first = await deadlines()

        async def renewed() -> bool:
            now = await deadlines()
            return now.keys() == first.keys() and all(now[w] > first[w] for w in first)

        await eventually(renewed, TIMEOUT)
    finally:
        await redis.aclose()


async def test_member_lists_are_right_again_after_redis_restarts(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
    postgres_url: str,
    private_redis: services.PrivateRedis,
) -> None:
    workers = two_workers(
        database_url=postgres_url,
        redis_url=private_redis.url,
        redis_prefix="presence",
        presence_linger_seconds=0,  # a closed socket leaves at once
        presence_ttl_seconds=3,  # a heartbeat each second
        metrics_enabled=True,
    )
    names = [*STAYING, *LEAVING, *JOINING]
    async with httpx.AsyncClient(timeout=5) as client:
        for name in names:
            response = await client.post(
                f"{workers[0].http_url}/api/auth/register",
                json={"username": name, "password": PASSWORD},
            )
            assert response.status_code == 201
        token = {
            n: create_access_token(subject=n, secret_key=TEST_SECRET, minutes=10) for n in names
        }

        async def join(name: str, worker: int) -> Watcher:
            url = room_url(workers[worker].ws_url, "lobby", token[name])
            ws = await open_socket(url)
            assert (await recv(ws))["type"] == "history"
            presence = await recv(ws)
            assert presence["type"] == "presence"
            return Watcher(ws, presence["members"])

        watchers = {name: await join(name, worker) for name, worker in (STAYING | LEAVING).items()}

        def everyone_sees(expected: set[str]) -> Callable[[], Any]:
            async def check() -> bool:
                if any(watcher.members != expected for watcher in watchers.values()):
                    return False
                for server in workers:
                    response = await client.get(
                        f"{server.http_url}/api/rooms/lobby/members",
                        headers={"Authorization": f"Bearer {token['amy']}"},
                    )
                    if response.status_code != 200 or set(response.json()["members"]) != expected:
                        return False
                return True

            return check

        await eventually(everyone_sees(set(STAYING) | set(LEAVING)), TIMEOUT)
        await each_knows_the_other(private_redis.url)

        await asyncio.to_thread(private_redis.stop)

        async def degraded() -> bool:
            for server in workers:
                if (await client.get(f"{server.http_url}/readyz")).status_code != 503:
                    return False
            return True

        await eventually(degraded, TIMEOUT)
        for name in LEAVING:
            await watchers.pop(name).ws.close()

        async def left() -> bool:
            return await open_sockets(client, *workers) == [1, 1]

        await eventually(left, TIMEOUT)
        for watcher in watchers.values():
            watcher.watch_for(set(STAYING))
        for name, worker in JOINING.items():
            watchers[name] = await join(name, worker)
        await asyncio.to_thread(private_redis.start)  # empty: no persistence

        await eventually(everyone_sees(set(STAYING) | set(JOINING)), TIMEOUT)
        for name, watcher in watchers.items():
            assert watcher.presence_frames >= 1, name  # told afresh, not only by events
            assert not watcher.lost, name  # and those who stayed were never shown leaving

    for watcher in watchers.values():
        await watcher.ws.close()
        await watcher.task


async def test_the_broker_says_when_every_room_is_subscribed_again(
    private_redis: services.PrivateRedis,
) -> None:
    broker = RedisBroker(private_redis.url, prefix="t")
    resubscribed = asyncio.Event()
    broker.on_resubscribed(resubscribed.set)
    try:
        async with broker.subscribe("one") as one, broker.subscribe("two") as two:
            resubscribed.clear()  # (the first connection counts too)
            await asyncio.to_thread(private_redis.stop)
            await eventually(lambda: not broker.connected, TIMEOUT)
            with pytest.raises(BrokerUnavailableError):
                await broker.publish("one", "lost")
            await asyncio.to_thread(private_redis.start)
            await asyncio.wait_for(resubscribed.wait(), TIMEOUT)
            # Both are subscribed by then: each has its GAP, and gets what comes next.
            await broker.publish("one", "to one")
            await broker.publish("two", "to two")
            for subscription, payload in ((one, "to one"), (two, "to two")):
                items = aiter(subscription)
                assert await asyncio.wait_for(anext(items), TIMEOUT) is GAP
                assert await asyncio.wait_for(anext(items), TIMEOUT) == payload
    finally:
        await broker.close()


class NoMessages:
    """A store with an empty room, as a listener reads it."""

    async def latest_message_id(self, *, room: str) -> int:
        return 0

    async def list_messages(
        self, *, room: str, limit: int, after: int | None = None
    ) -> list[Message]:
        return []


async def test_a_held_listener_sends_the_fresh_frame_before_what_came_after() -> None:
    broker, members = MemoryBroker(), set[Connection]()
    listener = RoomListener(
        "lobby", members=members, broker=broker, store=NoMessages(), metrics=Metrics()
    )
    connection = Connection(user="amy", room="lobby", queue_bytes=1_000_000)
    members.add(connection)
    await listener.start()
    try:
        listener.hold()  # the members are being read
        await broker.publish("lobby", events.room_payload(events.leave_event("lobby", "ben")))
        subscriptions = broker._subscribers["lobby"]
        await eventually(lambda: all(s.queue.empty() for s in subscriptions), TIMEOUT)
        assert len(connection.outbox) == 0  # taken, and waiting: not sent before the frame
        listener.release(events.presence_event("lobby", ["amy", "ben"]))  # read before it
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT):
            while len(received) < 2:
                taken = await connection.outbox.take_all()
                received += [json.loads(item.asgi_message["text"]) for item in taken]
        assert [frame["type"] for frame in received] == ["presence", "leave"]
    finally:
        await listener.stop()
