"""Limits per user, not per socket: reconnecting or opening more sockets gains nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests import services
from tests.conftest import live_token, make_settings
from tests.live import LiveServer
from tests.wsclient import open_socket, recv_type, room_url

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


async def test_the_message_rate_holds_across_workers(tmp_path: Path, redis_prefix: str) -> None:
    settings = make_settings(
        tmp_path, redis_url=services.REDIS_URL, redis_prefix=redis_prefix, **NO_REFILL
    )
    a, b = LiveServer(settings), LiveServer(settings)  # two workers, one database and Redis
    a.start()
    b.start()
    try:
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
    finally:
        a.stop()
        b.stop()
