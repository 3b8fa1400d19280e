"""Reconnecting with since=: exactly the missed messages, even while others keep talking."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable

import httpx
import psutil
from websockets.frames import Frame, Opcode

from tests.conftest import live_token
from tests.live import LiveServer
from tests.rawclient import RawClient
from tests.wsclient import new_member, open_socket, recv, recv_type, room_url

ROUNDS = 3
BURST = 20


async def test_reconnect_with_since_gets_exactly_the_missed_messages_under_traffic(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=1000, message_burst=1000)
    talker_token = await live_token(server, "talker")
    reader_token = await live_token(server, "reader")
    # Neither reads all that arrives: let their clients buffer it, so each can close at
    # once (a client whose queue is full reads no further, nor the server's close frame,
    # and its close waits out websockets' 10 s close timeout).
    talker = await open_socket(room_url(server.ws_url, "lobby", talker_token), max_queue=None)
    reader = await open_socket(room_url(server.ws_url, "lobby", reader_token), max_queue=None)
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
        reader = await open_socket(
            room_url(server.ws_url, "lobby", reader_token, since=ids[-1]), max_queue=None
        )
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


async def test_recovery_past_the_limit_sends_the_first_messages_and_more(
    live_server: Callable[..., LiveServer],
) -> None:
    """A history frame holds at most RECOVERY_LIMIT messages: the first ones missed, and
    ``more``; the rest come over HTTP with after=, the live stream after ``latest``."""
    server = live_server(recovery_limit=5, messages_per_second=1000, message_burst=1000)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    talker = await open_socket(room_url(server.ws_url, "lobby", alice))
    joined = await recv(talker)
    assert (joined["messages"], joined["latest"], joined["more"]) == ([], 0, False)
    for n in range(12):
        await talker.send(f"m{n}")
    ids = [(await recv_type(talker, "message"))["id"] for _ in range(12)]

    reader = await open_socket(room_url(server.ws_url, "lobby", bob, since=0))
    history = await recv(reader)
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(5)]
    assert (history["more"], history["latest"]) == (True, ids[-1])
    assert (await recv(reader))["type"] == "presence"
    for n in range(12, 14):
        await talker.send(f"m{n}")
    live = [await recv_type(reader, "message") for _ in range(2)]
    assert [m["text"] for m in live] == ["m12", "m13"]  # nothing of what the frame left out

    texts = [m["text"] for m in history["messages"]]
    after = history["messages"][-1]["id"]
    headers = {"Authorization": f"Bearer {bob}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as client:
        while after < history["latest"]:
            page = await client.get("/api/rooms/lobby/messages", params={"after": after})
            fetched = [m for m in page.json()["messages"] if m["id"] <= history["latest"]]
            texts += [m["text"] for m in fetched]
            after = page.json()["messages"][-1]["id"]
    assert texts + [m["text"] for m in live] == [f"m{n}" for n in range(14)]

    again = await open_socket(room_url(server.ws_url, "lobby", bob))  # no since: as before
    last = await recv(again)
    assert (len(last["messages"]), last["latest"], last["more"]) == (14, live[-1]["id"], False)
    for ws in (talker, reader, again):
        await ws.close()


async def test_a_history_frame_stays_within_the_sockets_send_budget(
    live_server: Callable[..., LiveServer],
) -> None:
    budget = 20_000
    server = live_server(send_queue_bytes=budget, messages_per_second=1000, message_burst=1000)
    ws, _, token = await new_member(server, "alice")
    for n in range(30):
        await ws.send(f"{n:04d}" + "x" * 996)
    ids = [(await recv_type(ws, "message"))["id"] for _ in range(30)]
    await ws.close()

    for since in (0, None):
        ws = await open_socket(room_url(server.ws_url, "lobby", token, since=since))
        raw = await ws.recv()
        history = json.loads(raw)
        assert len(raw) <= budget + 1100
        assert 10 <= len(history["messages"]) < 30
        assert history["latest"] == ids[-1]
        if since == 0:  # the first messages missed, and more to fetch
            assert history["messages"][0]["id"] == ids[0]
            assert history["more"] is True
        else:  # the newest ones, as the history always is
            assert history["messages"][-1]["id"] == ids[-1]
            assert history["more"] is False
        await ws.close()


async def test_big_replays_to_sockets_that_never_read_hold_little_memory(
    live_server: Callable[..., LiveServer],
) -> None:
    """since=0 on a room of 12 MB, to 8 sockets that never read: each gets a frame within
    its send budget, so the server's memory barely moves (each held 12 MB before)."""
    server = live_server(
        send_queue_bytes=128 * 1024, messages_per_second=100_000, message_burst=100_000
    )
    filler, watcher = await live_token(server, "filler"), await live_token(server, "watcher")
    ws = await open_socket(room_url(server.ws_url, "big", filler), max_queue=None)
    await recv_type(ws, "presence")
    for n in range(3000):
        await ws.send(f"{n:04d}" + "x" * 3996)
    for _ in range(3000):
        await recv_type(ws, "message")
    await ws.close()
    watching = await open_socket(room_url(server.ws_url, "big", watcher))
    await recv_type(watching, "presence")
    gc.collect()
    rss_before = psutil.Process().memory_info().rss

    readers = [RawClient(room_url(server.ws_url, "big", filler, since=0)) for _ in range(8)]
    for n, reader in enumerate(readers):
        await reader.open(server.port)
        # Read once its history is out: the server's reply shows when that was done.
        await reader.send_raw(Frame(Opcode.TEXT, f"ready {n}".encode()))
    ready = set()
    while len(ready) < len(readers):
        ready.add((await recv_type(watching, "message", timeout=30))["text"])
    grown = psutil.Process().memory_info().rss - rss_before
    assert grown < 32 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB"
    for reader in readers:
        reader.abandon()
    await watching.close()
