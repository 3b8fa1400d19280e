"""Redis restarting under traffic: sockets stay open, nothing stored is lost or repeated.

Two workers (two servers in this process, one PostgreSQL database) share a private
redis-server, which is killed while two talkers keep sending and started again (empty:
no persistence). Meanwhile /readyz says degraded and sends get an ``unavailable`` error;
afterwards every reader has every stored message exactly once, in id order, and presence
lists everyone again on both workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from roomchat.accounts.security import create_access_token
from tests import services
from tests.helpers import PASSWORD, TEST_SECRET
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import open_socket, recv, room_url

TIMEOUT = 20.0
NAMES = ["talker_a", "talker_b", "reader_a", "reader_b"]


async def status(client: httpx.AsyncClient, server: LiveServer) -> int:
    return (await client.get(f"{server.http_url}/readyz")).status_code


class Member:
    """A socket that records every message and error frame it gets."""

    def __init__(self, ws: Any, history: list[int]) -> None:
        self.ws = ws
        self.ids: list[int] = history
        self.texts: list[str] = []
        self.errors: list[str] = []
        self.closed = False
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "message":
                    self.ids.append(frame["id"])
                    self.texts.append(frame["text"])
                elif frame["type"] == "error":
                    self.errors.append(frame["code"])
        finally:
            self.closed = True


async def test_a_redis_restart_during_traffic_loses_nothing(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
    postgres_url: str,
    private_redis: services.PrivateRedis,
) -> None:
    a, b = two_workers(
        database_url=postgres_url,
        redis_url=private_redis.url,
        redis_prefix="restart",
        presence_ttl_seconds=3,
        messages_per_second=1000,
        message_burst=1000,
    )
    async with httpx.AsyncClient(timeout=10) as client:
        for name in NAMES:
            response = await client.post(
                f"{a.http_url}/api/auth/register", json={"username": name, "password": PASSWORD}
            )
            assert response.status_code == 201
    tokens = {n: create_access_token(subject=n, secret_key=TEST_SECRET, minutes=10) for n in NAMES}

    async def join(server: LiveServer, name: str) -> Member:
        ws = await open_socket(room_url(server.ws_url, "lobby", tokens[name]), max_queue=None)
        history = await recv(ws)
        assert history["type"] == "history"
        assert (await recv(ws))["type"] == "presence"
        return Member(ws, [message["id"] for message in history["messages"]])

    talker_a, talker_b = await join(a, "talker_a"), await join(b, "talker_b")
    readers = [await join(a, "reader_a"), await join(b, "reader_b")]
    members = [talker_a, talker_b, *readers]

    stop = asyncio.Event()
    sent = {"a": 0, "b": 0}

    async def talk(member: Member, name: str) -> None:
        while not stop.is_set():
            await member.ws.send(f"{name} {sent[name]}")
            sent[name] += 1
            await asyncio.sleep(0.01)  # pacing the traffic, not waiting for anything

    talking = [asyncio.create_task(talk(talker_a, "a")), asyncio.create_task(talk(talker_b, "b"))]
    async with httpx.AsyncClient(timeout=5) as client:

        async def delivered(count: int) -> Any:
            async def check() -> bool:
                return all(len(reader.ids) >= count for reader in readers)

            return check

        await eventually(await delivered(10), TIMEOUT)
        await asyncio.to_thread(private_redis.stop)

        async def degraded() -> bool:
            return await status(client, a) == 503 and await status(client, b) == 503

        await eventually(degraded, TIMEOUT)

        async def refused() -> bool:
            return "unavailable" in talker_a.errors and "unavailable" in talker_b.errors

        await eventually(refused, TIMEOUT)
        late = await join(b, "reader_b")  # a second tab, opened while Redis is away
        members.append(late)
        await asyncio.to_thread(private_redis.start)

        async def ready() -> bool:
            return await status(client, a) == 200 and await status(client, b) == 200

        await eventually(ready, TIMEOUT)
        before = len(readers[0].ids)
        await eventually(await delivered(before + 20), TIMEOUT)
        stop.set()
        await asyncio.gather(*talking)

        def refusals(talker: Member) -> int:
            return sum(code in ("unavailable", "store_unavailable") for code in talker.errors)

        async def accounted() -> bool:  # each send answered: its echo, or an error frame
            return all(
                sum(text.split()[0] == name for text in talker.texts) + refusals(talker)
                == sent[name]
                for talker, name in ((talker_a, "a"), (talker_b, "b"))
            )

        await eventually(accounted, TIMEOUT)

        auth = {"Authorization": f"Bearer {tokens['reader_a']}"}
        page = await client.get(f"{a.http_url}/api/rooms/lobby/messages?limit=200", headers=auth)
        stored = [message["id"] for message in page.json()["messages"]]
        assert len(stored) < 200

        # Every text a talker sent was either stored (once) or refused with an error frame.
        stored_texts = [message["text"] for message in page.json()["messages"]]
        for talker, name in ((talker_a, "a"), (talker_b, "b")):
            own = [text for text in stored_texts if text.split()[0] == name]
            assert len(own) == len(set(own))
            assert len(own) + refusals(talker) == sent[name], (name, len(own), talker.errors)
            assert set(own) <= {f"{name} {n}" for n in range(sent[name])}

        def expected(member: Member) -> list[int]:  # from its first message on
            return stored[stored.index(member.ids[0]) :]

        async def all_delivered() -> bool:
            return all(len(member.ids) >= len(expected(member)) for member in members)

        await eventually(all_delivered, TIMEOUT)
        for member in members:
            assert member.ids == expected(member)  # every stored message, once, in id order
            assert not member.closed  # the socket stayed open throughout

        async def everyone_present() -> bool:
            for server in (a, b):
                response = await client.get(
                    f"{server.http_url}/api/rooms/lobby/members", headers=auth
                )
                if response.status_code != 200 or response.json()["members"] != sorted(NAMES):
                    return False
            return True

        await eventually(everyone_present, TIMEOUT)
    for member in members:
        await member.ws.close()
        await member.task
