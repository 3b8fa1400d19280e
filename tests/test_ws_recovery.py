"""Reconnecting with since=: exactly the missed messages, even while others keep talking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, recv_type, room_url

TOTAL = 120


async def test_reconnect_with_since_gets_exactly_the_missed_messages_under_traffic(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=1000, message_burst=1000)
    talker_token = await live_token(server, "talker")
    reader_token = await live_token(server, "reader")
    # The talker never reads: let its client buffer what arrives, so it can close at once.
    talker = await open_socket(room_url(server.ws_url, "lobby", talker_token), max_queue=None)
    reader = await open_socket(room_url(server.ws_url, "lobby", reader_token))
    await recv(reader)  # history
    await recv(reader)  # presence
    talking_done = asyncio.Event()

    async def talk() -> None:
        for n in range(TOTAL):
            await talker.send(f"m{n}")
            if n % 10 == 0:
                await asyncio.sleep(0)  # let the reader interleave its reconnects
        talking_done.set()

    seen: list[int] = []
    texts: list[str] = []
    talking = asyncio.create_task(talk())
    # Reconnect three times while the talker keeps going, each time after a few messages.
    for _ in range(3):
        for _ in range(10):
            message = await recv_type(reader, "message")
            seen.append(message["id"])
            texts.append(message["text"])
        await reader.close()
        reader = await open_socket(room_url(server.ws_url, "lobby", reader_token, since=seen[-1]))
        history = await recv(reader)
        assert history["type"] == "history"
        for message in history["messages"]:
            seen.append(message["id"])
            texts.append(message["text"])
        assert (await recv(reader))["type"] == "presence"
    await asyncio.wait_for(talking, 30)
    while len(texts) < TOTAL:
        message = await recv_type(reader, "message")
        seen.append(message["id"])
        texts.append(message["text"])

    assert texts == [f"m{n}" for n in range(TOTAL)]  # no gap, no duplicate, in order
    assert seen == sorted(set(seen))
    await talker.close()
    await reader.close()


async def test_since_replays_everything_after_the_id_beyond_the_history_limit(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(history_limit=2)
    token = await live_token(server, "alice")
    ws = await open_socket(room_url(server.ws_url, "lobby", token))
    await recv(ws)
    await recv(ws)
    for n in range(6):
        await ws.send(f"m{n}")
    ids = [(await recv_type(ws, "message"))["id"] for _ in range(6)]
    await ws.close()
    ws = await open_socket(room_url(server.ws_url, "lobby", token, since=ids[0]))
    history = await recv(ws)
    assert [m["text"] for m in history["messages"]] == ["m1", "m2", "m3", "m4", "m5"]
    await ws.close()
