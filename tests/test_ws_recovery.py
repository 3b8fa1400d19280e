"""Reconnecting with since=: exactly the missed messages, even while others keep talking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, recv_type, room_url

ROUNDS = 3
BURST = 20


async def test_reconnect_with_since_gets_exactly_the_missed_messages_under_traffic(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=1000, message_burst=1000)
    talker_token = await live_token(server, "talker")
    reader_token = await live_token(server, "reader")
    # The talker reads nothing: let its client buffer what arrives, so it can close at once.
    talker = await open_socket(room_url(server.ws_url, "lobby", talker_token), max_queue=None)
    reader = await open_socket(room_url(server.ws_url, "lobby", reader_token))
    await recv_type(reader, "presence")
    sent = 0
    texts: list[str] = []
    ids: list[int] = []

    async def talk(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            await talker.send(f"m{sent}")
            sent += 1
            await asyncio.sleep(0)  # interleave with the reader's reconnect

    def seen(message: dict[str, object]) -> None:
        texts.append(str(message["text"]))
        ids.append(int(str(message["id"])))

    for _ in range(ROUNDS):
        await talk(BURST)
        for _ in range(BURST // 2):  # read half, then drop off
            seen(await recv_type(reader, "message"))
        await reader.close()
        # Others keep talking while the reader is away, and while it reconnects.
        await talk(BURST // 2)
        talking = asyncio.create_task(talk(BURST // 2))
        reader = await open_socket(room_url(server.ws_url, "lobby", reader_token, since=ids[-1]))
        history = await recv(reader)
        assert history["type"] == "history"
        for message in history["messages"]:
            seen(message)
        assert (await recv(reader))["type"] == "presence"
        await asyncio.wait_for(talking, 10)
        while len(texts) < sent:
            seen(await recv_type(reader, "message"))

    assert texts == [f"m{n}" for n in range(sent)]  # no gap, no duplicate, in order
    assert ids == sorted(set(ids))
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
