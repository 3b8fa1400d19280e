"""A socket's posts waiting to be stored: past ``MAX_POSTS_IN_FLIGHT`` its reading waits.

The store is held by a gate the test opens (every commit waits on it: both stores
share one group commit), so the socket's posts pile up in flight. Below the limit the
socket is read on; at it, the server reads no more of its frames until one is stored; once the store
drains, every post is stored and delivered, in order, and the frames behind them answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from roomchat.realtime.session import MAX_POSTS_IN_FLIGHT
from tests.helpers import live_token
from tests.live import LiveServer
from tests.storegate import StoreGate
from tests.waiting import eventually
from tests.wsclient import TIMEOUT, join, recv, recv_messages, recv_type

#: Posts past the limit: they wait in the client's socket, not in the server.
BEHIND = 6


async def test_a_socket_over_the_posts_in_flight_limit_is_read_no_further_until_they_drain(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StoreGate(monkeypatch)
    server = live_server(messages_per_second=1000, message_burst=1000)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    sender, _, _ = await join(server, "lobby", alice)
    watcher, _, _ = await join(server, "lobby", bob)
    texts = [f"m{n}" for n in range(MAX_POSTS_IN_FLIGHT + BEHIND)]
    try:
        # Below the limit the socket is read on: a bad frame is answered at once.
        for text in texts[: MAX_POSTS_IN_FLIGHT - 1]:
            await sender.send(text)
        await sender.send("{not json")
        assert (await recv_type(sender, "error"))["code"] == "bad_json"
        assert gate.submitted == texts[: MAX_POSTS_IN_FLIGHT - 1]

        # At the limit reading waits: nothing behind the 64th post is taken.
        for text in texts[MAX_POSTS_IN_FLIGHT - 1 :]:
            await sender.send(text)
        await sender.send("{not json either")
        await eventually(lambda: len(gate.submitted) >= MAX_POSTS_IN_FLIGHT)
        # Sentinel: another socket's frame, read and answered after the sender's frames
        # reached the server, which would have taken the next one by now.
        await watcher.send("{not json")
        assert (await recv_type(watcher, "error"))["code"] == "bad_json"
        assert gate.submitted == texts[:MAX_POSTS_IN_FLIGHT]
    finally:
        gate.open()

    # Drained: every post stored and delivered in order, and the last frame answered.
    received: list[str] = []
    errors: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while len(received) < len(texts) or not errors:
            frame = await recv(sender)
            if frame["type"] == "message":
                received.append(frame["text"])
            elif frame["type"] == "error":
                errors.append(frame["code"])
    assert received == texts
    assert errors == ["bad_json"]
    assert [m["text"] for m in await recv_messages(watcher, len(texts))] == texts
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        page = await client.get(
            "/api/rooms/lobby/messages",
            params={"limit": 200},
            headers={"Authorization": f"Bearer {alice}"},
        )
    assert [m["text"] for m in page.json()["messages"]] == texts
    assert gate.submitted == texts
    await sender.close()
    await watcher.close()
