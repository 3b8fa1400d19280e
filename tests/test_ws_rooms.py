"""Chatting in rooms over real sockets: history, presence, fan-out, frames, closes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from jose import jwt
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from roomchat.realtime.strikes import TYPING_ANNOUNCED_PER_SECOND, TYPING_FRAMES_BURST
from tests.conftest import TEST_SECRET, live_token
from tests.live import LiveServer
from tests.rawclient import RawClient
from tests.waiting import eventually
from tests.wsclient import (
    join,
    new_member,
    open_socket,
    recv,
    recv_messages,
    recv_type,
    refused_status,
    room_url,
    wait_close_frame,
    wait_closed,
)


async def test_every_member_gets_every_message_in_the_same_order(live: LiveServer) -> None:
    names = ["alice", "bob", "carol"]
    tokens = {name: await live_token(live, name) for name in names}
    sockets = {name: (await join(live, "lobby", tokens[name]))[0] for name in names}

    async def chat(name: str) -> None:
        for n in range(5):
            await sockets[name].send(f'{{"type": "message", "text": "{name} {n}"}}')

    await asyncio.gather(*(chat(name) for name in names))
    received = {name: await recv_messages(ws, 15) for name, ws in sockets.items()}
    orders = [[m["id"] for m in messages] for messages in received.values()]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0] == sorted(orders[0])
    texts = sorted(m["text"] for m in received["alice"])
    assert texts == sorted(f"{name} {n}" for name in names for n in range(5))
    first = received["bob"][0]
    assert set(first) == {"type", "id", "room", "user", "text", "ts"}
    assert first["room"] == "lobby"
    assert datetime.strptime(first["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    for ws in sockets.values():
        await ws.close()


async def test_nobody_outside_the_room_gets_its_messages(live: LiveServer) -> None:
    in_a = (await new_member(live, "alice", "a")).ws
    in_b = (await new_member(live, "bob", "b")).ws
    await in_a.send("for room a")
    assert (await recv_type(in_a, "message"))["text"] == "for room a"
    # Room a's message has been handed to every socket it would reach; a leak into room b
    # would now arrive ahead of room b's own next message, the sentinel.
    await in_b.send("for room b")
    assert (await recv_type(in_b, "message"))["text"] == "for room b"
    await in_a.close()
    await in_b.close()


async def test_history_presence_join_leave_and_typing(live: LiveServer) -> None:
    alice, bob = await live_token(live, "alice"), await live_token(live, "bob")
    ws_a, history, presence = await join(live, "lobby", alice)
    assert await recv(ws_a) == {"type": "join", "room": "lobby", "user": "alice"}
    assert history["messages"] == []
    assert presence["members"] == ["alice"]
    await ws_a.send("hello")
    sent = await recv_type(ws_a, "message")

    ws_b, history, presence = await join(live, "lobby", bob)
    assert [m["id"] for m in history["messages"]] == [sent["id"]]
    assert history["messages"][0]["text"] == "hello"
    assert presence["members"] == ["alice", "bob"]
    assert await recv_type(ws_a, "join") == {"type": "join", "room": "lobby", "user": "bob"}

    await ws_b.send('{"type": "typing"}')
    assert await recv_type(ws_a, "typing") == {"type": "typing", "room": "lobby", "user": "bob"}

    await ws_b.close()
    assert await recv_type(ws_a, "leave") == {"type": "leave", "room": "lobby", "user": "bob"}
    await ws_a.close()


async def test_history_is_the_last_history_limit_messages(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(history_limit=3)
    ws, _, token = await new_member(server, "alice")
    for n in range(5):
        await ws.send(f"m{n}")
    await recv_messages(ws, 5)
    await ws.close()
    ws, history, _ = await join(server, "lobby", token)
    assert [m["text"] for m in history["messages"]] == ["m2", "m3", "m4"]
    await ws.close()


async def test_two_sockets_of_one_user_are_one_member(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(max_sockets_per_user=2, presence_linger_seconds=0.2)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    watcher, _, _ = await join(server, "lobby", bob)
    assert (await recv_type(watcher, "join"))["user"] == "bob"  # its own join comes too
    tab1, _, _ = await join(server, "lobby", alice)
    assert (await recv_type(watcher, "join"))["user"] == "alice"
    tab2, _, presence = await join(server, "lobby", alice)
    assert presence["members"] == ["alice", "bob"]
    alices = room_url(server.ws_url, "lobby", alice)
    assert await refused_status(alices) == 429  # at her cap of two

    await tab1.close()
    # A socket's claim is released only after it has left the room, a leave (if any)
    # published; so once a third socket of hers is let in, a leave for tab 1 would be
    # ahead of anything published after, in the one order the watcher gets them in.
    tab3 = await admitted(alices)
    await tab2.send("still here")
    frame = await recv(watcher)
    assert (frame["type"], frame.get("text")) == ("message", "still here")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        members = await client.get(
            "/api/rooms/lobby/members", headers={"Authorization": f"Bearer {bob}"}
        )
    assert members.json() == {"members": ["alice", "bob"]}

    await tab2.close()
    await tab3.close()  # her last socket: the leave comes once the linger passes
    assert await recv(watcher) == {"type": "leave", "room": "lobby", "user": "alice"}
    await watcher.close()


async def admitted(url: str) -> ClientConnection:
    """A socket opened at ``url`` once the server lets it in (refused with 429 until then)."""
    sockets: list[ClientConnection] = []

    async def let_in() -> bool:
        try:
            sockets.append(await open_socket(url))
        except InvalidStatus as refused:
            if refused.response.status_code != 429:
                raise
        return bool(sockets)

    await eventually(let_in)
    return sockets[0]


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(live: LiveServer) -> None:
    ws = (await new_member(live, "alice")).ws
    cases: dict[str, str] = {
        "{not json": "bad_json",
        "{}": "unknown_type",
        '{"type": "dance"}': "unknown_type",
        '{"type": ["message"]}': "unknown_type",
        '{"type": "message"}': "bad_text",
        '{"type": "message", "text": 5}': "bad_text",
        '{"type": "message", "text": "   "}': "empty_text",
        '{"type": "message", "text": "hi", "extra": 1}': "unknown_field",
        "   ": "empty_text",
        "nul \x00 inside": "bad_text",
        '{"type": "message", "text": "nul \\u0000 inside"}': "bad_text",
        "x" * 4001: "text_too_long",
    }
    assert (await recv(ws))["type"] == "join"
    for frame, code in cases.items():
        await ws.send(frame)
        error = await recv(ws)
        assert error["type"] == "error", frame
        assert error["code"] == code, frame
        assert error["detail"]
    await ws.send(b"\x00\x01")
    assert (await recv(ws))["code"] == "binary_frame"
    await ws.send("[1, 2]")  # does not start with '{': a plain-text message
    assert (await recv(ws))["text"] == "[1, 2]"
    await ws.send('{"type": "message", "text": "still open"}')
    assert (await recv(ws))["text"] == "still open"
    await ws.close()


async def test_a_frame_over_the_limit_closes_with_1009(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(max_frame_bytes=1024)
    ws = (await new_member(server, "alice")).ws
    await ws.send("y" * 2048)
    assert await wait_closed(ws) == 1009


async def test_a_frame_over_the_limit_closes_with_1009_without_uvicorns_limit(
    live_server: Callable[..., LiveServer],
) -> None:
    """Started as plain ``uvicorn roomchat.main:app`` (16 MiB limit), the app still says 1009."""
    server = live_server(max_frame_bytes=1024, uvicorn_options={"ws_max_size": 16 * 1024 * 1024})
    ws = (await new_member(server, "alice")).ws
    await ws.send("é" * 1000)  # 1000 characters, 2000 bytes
    assert await wait_closed(ws) == 1009


@pytest.mark.embedded_only  # the socket's own expiry timer: no backend takes part
async def test_a_socket_is_closed_with_1008_when_its_token_expires(live: LiveServer) -> None:
    await live_token(live, "alice")
    now = int(datetime.now(UTC).timestamp())
    # Long enough to outlive the join on a loaded machine (else the handshake refuses it).
    short = jwt.encode({"sub": "alice", "iat": now, "exp": now + 4}, TEST_SECRET)
    ws, _, _ = await join(live, "lobby", short)
    assert await wait_close_frame(ws, timeout=10) == (1008, "token expired")
    with pytest.raises(InvalidStatus) as refused:  # and not one moment longer
        await open_socket(room_url(live.ws_url, "lobby", short))
    assert refused.value.response.status_code == 401


async def test_server_shutdown_closes_sockets_with_a_restart_code(live: LiveServer) -> None:
    ws = (await new_member(live, "alice")).ws
    await asyncio.to_thread(live.stop)
    assert await wait_closed(ws) in (1001, 1012)


async def test_sending_too_fast_gets_rate_limited_then_closed(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=0.1, message_burst=3)
    flooder = (await new_member(server, "alice")).ws
    other = (await new_member(server, "bob")).ws
    for n in range(3):
        await flooder.send(f"ok {n}")
    await flooder.send("too fast")
    assert (await recv_type(flooder, "error"))["code"] == "rate_limited"
    await other.send("bob is not limited by alice")
    received = [m["text"] for m in await recv_messages(other, 4)]
    assert received == ["ok 0", "ok 1", "ok 2", "bob is not limited by alice"]
    for _ in range(3):
        await flooder.send("abuse")
    code, reason = await wait_close_frame(flooder)
    assert (code, reason) == (1008, "too many messages: slow down")
    await other.close()


async def test_a_text_frame_that_is_not_utf8_closes_with_1007(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    client = RawClient(room_url(live.ws_url, "lobby", token))
    await client.open(live.port)
    await client.send_raw(Frame(Opcode.TEXT, b"caf\xe9 \xff\xfe"))
    assert await client.close_code() == 1007  # "invalid frame payload data"


async def test_typing_is_announced_at_most_twice_at_once_then_once_a_second(
    live: LiveServer,
) -> None:
    watcher = (await new_member(live, "alice")).ws
    typist = (await new_member(live, "bob")).ws
    started = time.monotonic()
    for _ in range(TYPING_FRAMES_BURST):  # tolerated (no strike), but not all announced
        await typist.send('{"type": "typing"}')
    await typist.send("sentinel")
    announced = 0
    while (frame := await recv(watcher))["type"] != "message":
        announced += frame["type"] == "typing"
    elapsed = time.monotonic() - started
    # Two at once, then one a second: however slow the machine, no more than the refill.
    assert 2 <= announced <= 2 + int(elapsed * TYPING_ANNOUNCED_PER_SECOND)
    assert frame["text"] == "sentinel"
    await watcher.close()
    await typist.close()
