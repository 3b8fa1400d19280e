"""Limits per user, not per socket: reconnecting or opening more sockets gains nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from tests.conftest import live_token
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import open_socket, recv, recv_type, room_url

#: Slow enough that no test here sees a token come back.
NO_REFILL = {"messages_per_second": 0.001, "message_burst": 3}


async def post(server: LiveServer, token: str, text: str) -> int:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.post(
            "/api/rooms/lobby/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.status_code


async def test_reconnecting_does_not_refill_the_message_rate(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(**NO_REFILL)
    token = await live_token(server, "alice")
    first = await open_socket(room_url(server.ws_url, "lobby", token))
    await recv_type(first, "presence")
    for n in range(3):
        await first.send(f"m{n}")
        await recv_type(first, "message")
    await first.close()

    again = await open_socket(room_url(server.ws_url, "lobby", token))
    await recv_type(again, "presence")
    await again.send("one more")
    assert (await recv_type(again, "error"))["code"] == "rate_limited"
    assert await post(server, token, "and over HTTP") == 429
    await again.close()


async def test_sockets_and_http_posts_share_one_budget(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(**NO_REFILL)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    tabs = [await open_socket(room_url(server.ws_url, "lobby", alice)) for _ in range(2)]
    for tab in tabs:
        await recv_type(tab, "presence")
    assert await post(server, alice, "over HTTP") == 201
    await tabs[0].send("tab 0")
    await tabs[1].send("tab 1")
    texts = [(await recv_type(tabs[0], "message"))["text"] for _ in range(3)]
    assert texts == ["over HTTP", "tab 0", "tab 1"]
    await tabs[0].send("one too many")
    assert (await recv_type(tabs[0], "error"))["code"] == "rate_limited"
    assert await post(server, alice, "still too many") == 429
    assert await post(server, bob, "bob has his own") == 201
    for tab in tabs:
        await tab.close()


async def test_the_message_rate_holds_across_workers(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
) -> None:
    a, b = two_workers(**NO_REFILL)  # two workers, one database and Redis
    token = await live_token(a, "alice")
    on_a = await open_socket(room_url(a.ws_url, "lobby", token))
    await recv_type(on_a, "presence")
    for n in range(3):
        await on_a.send(f"m{n}")
        await recv_type(on_a, "message")
    on_b = await open_socket(room_url(b.ws_url, "lobby", token))
    await recv_type(on_b, "presence")
    await on_b.send("from the other worker")
    assert (await recv_type(on_b, "error"))["code"] == "rate_limited"
    await on_a.close()
    await on_b.close()


async def refused_status(url: str) -> int | None:
    """The HTTP status of a refused handshake, or None when the socket opened (it is closed)."""
    try:
        ws = await open_socket(url)
    except InvalidStatus as refused:
        return refused.response.status_code
    await recv_type(ws, "presence")
    await ws.close()
    return None


async def test_sockets_past_the_per_user_cap_are_refused_with_429(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(max_sockets_per_user=3)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    attempts = [open_socket(room_url(server.ws_url, f"r{n % 2}", alice)) for n in range(8)]
    results = await asyncio.gather(*attempts, return_exceptions=True)  # all at once
    opened = [ws for ws in results if not isinstance(ws, BaseException)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(opened) == 3
    assert {r.response.status_code for r in refusals if isinstance(r, InvalidStatus)} == {429}
    assert len(refusals) == 5
    assert await refused_status(room_url(server.ws_url, "r0", bob)) is None  # bob's are his

    await opened.pop().close()  # a place comes free once the server has seen it close
    url = room_url(server.ws_url, "r0", alice)
    await eventually(lambda: opens(url))
    for ws in opened:
        await ws.close()


async def opens(url: str) -> bool:
    return await refused_status(url) is None


async def test_the_socket_cap_holds_across_workers(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
) -> None:
    a, b = two_workers(max_sockets_per_user=3)
    token = await live_token(a, "alice")
    opened = [await open_socket(room_url(server.ws_url, "lobby", token)) for server in (a, b, a)]
    for server in (a, b):
        assert await refused_status(room_url(server.ws_url, "lobby", token)) == 429
    for ws in opened:
        await ws.close()


async def flapping_events(watcher: ClientConnection, user: str, sentinel: str) -> list[str]:
    """The join and leave events of ``user`` the watcher got before ``sentinel``."""
    seen = []
    while (frame := await recv(watcher)).get("text") != sentinel:
        if frame["type"] in ("join", "leave") and frame["user"] == user:
            seen.append(frame["type"])
    return seen


async def test_a_users_join_and_leave_flapping_is_coalesced(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    flapper, watcher = await live_token(server, "flapper"), await live_token(server, "watcher")
    watching = await open_socket(room_url(server.ws_url, "lobby", watcher))
    await recv_type(watching, "join")
    for _ in range(30):
        ws = await open_socket(room_url(server.ws_url, "lobby", flapper))
        await recv_type(ws, "presence")
        await ws.close()
    assert await post(server, watcher, "sentinel") == 201
    assert await flapping_events(watching, "flapper", "sentinel") in (["join"], ["join", "leave"])
    leave = await recv_type(watching, "leave")  # and once it stays away, it has left
    assert leave["user"] == "flapper"
    await watching.close()


async def test_flapping_across_workers_is_coalesced(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
) -> None:
    a, b = two_workers()
    flapper, watcher = await live_token(a, "flapper"), await live_token(a, "watcher")
    watching = await open_socket(room_url(a.ws_url, "lobby", watcher))
    await recv_type(watching, "join")
    for n in range(30):
        ws = await open_socket(room_url((a, b)[n % 2].ws_url, "lobby", flapper))
        await recv_type(ws, "presence")
        await ws.close()
    assert await post(a, watcher, "sentinel") == 201
    events = await flapping_events(watching, "flapper", "sentinel")
    assert events in (["join"], ["join", "leave"])
    assert (await recv_type(watching, "leave"))["user"] == "flapper"
    await watching.close()
