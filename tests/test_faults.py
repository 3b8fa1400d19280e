"""Faults: a failing store, a crashing session, a server restart."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from roomchat.realtime import session
from roomchat.store import statements
from tests import services
from tests.conftest import live_token, make_settings
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import new_member, open_socket, recv, recv_type, room_url, wait_closed


async def test_a_failed_write_gets_store_unavailable_and_is_not_delivered(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = (await new_member(live, "alice")).ws
    other, _, bob = await new_member(live, "bob")
    locked = sqlite3.OperationalError("database is locked")
    # The next write fails, on either path: through SQLAlchemy (PostgreSQL) or, on SQLite,
    # in the store's own thread.
    fail_once(monkeypatch, statements, "store_batches", OperationalError("INSERT", {}, locked))
    await sender.send("lost to the fault")
    error = await recv_type(sender, "error")
    assert error["code"] == "store_unavailable"
    await sender.send("after the fault")
    # The other member's next message is the one after the fault: nothing half-delivered.
    assert (await recv_type(other, "message"))["text"] == "after the fault"
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        history = await client.get(
            "/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {bob}"}
        )
    assert [m["text"] for m in history.json()["messages"]] == ["after the fault"]
    await sender.close()
    await other.close()


def fail_once(monkeypatch: pytest.MonkeyPatch, module: object, name: str, error: Exception) -> None:
    """Make ``module.name`` raise ``error`` on its next call only (sync or async)."""
    real = getattr(module, name)

    def failing(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(module, name, real)
        raise error

    monkeypatch.setattr(module, name, failing)


async def test_a_crashing_session_closes_with_1011_and_the_room_goes_on(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = (await new_member(live, "alice")).ws
    other = (await new_member(live, "bob")).ws
    real_parse = session.parse_frame

    def crash_on_boom(raw: str, **kwargs: Any) -> Any:
        if raw == "boom":
            raise RuntimeError("a bug")
        return real_parse(raw, **kwargs)

    monkeypatch.setattr(session, "parse_frame", crash_on_boom)
    await victim.send("boom")
    assert await wait_closed(victim) == 1011
    assert (await recv_type(other, "leave"))["user"] == "alice"
    await other.send("the room goes on")
    assert (await recv_type(other, "message"))["text"] == "the room goes on"
    await other.close()


async def test_a_restart_loses_nothing_and_since_recovers_what_was_missed(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(history_limit=1)
    reader, _, bob = await new_member(server, "bob")
    writer, _, alice = await new_member(server, "alice")
    await writer.send("before")
    last_seen = (await recv_type(reader, "message"))["id"]

    await asyncio.to_thread(server.restart)
    assert await wait_closed(reader) in (1001, 1012)
    assert await wait_closed(writer) in (1001, 1012)

    writer = await open_socket(room_url(server.ws_url, "lobby", alice))
    for n in range(3):
        await writer.send(f"missed {n}")
    for _ in range(3):
        await recv_type(writer, "message")
    reader = await open_socket(room_url(server.ws_url, "lobby", bob, since=last_seen))
    history = await recv(reader)
    assert [m["text"] for m in history["messages"]] == ["missed 0", "missed 1", "missed 2"]
    await writer.send("live again")
    assert (await recv_type(reader, "message"))["text"] == "live again"
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        page = await client.get(
            "/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {bob}"}
        )
    texts = [m["text"] for m in page.json()["messages"]]
    assert texts == ["before", "missed 0", "missed 1", "missed 2", "live again"]
    await reader.close()
    await writer.close()


async def test_an_http_post_the_store_refuses_is_a_503_and_nothing_is_stored(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await live_token(live, "alice")
    locked = sqlite3.OperationalError("database is locked")
    fail_once(monkeypatch, statements, "store_batches", OperationalError("INSERT", {}, locked))
    auth = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        refused = await client.post("/api/rooms/lobby/messages", json={"text": "x"}, headers=auth)
        assert refused.status_code == 503
        assert refused.json()["detail"] == "the message could not be stored"
        stored = await client.post("/api/rooms/lobby/messages", json={"text": "y"}, headers=auth)
        assert stored.status_code == 201
        page = await client.get("/api/rooms/lobby/messages", headers=auth)
    assert [m["text"] for m in page.json()["messages"]] == ["y"]


async def test_http_routes_that_need_redis_answer_503_while_it_is_away(
    tmp_path: Path, private_redis: services.PrivateRedis, postgres_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=postgres_url, redis_url=private_redis.url)
    server = LiveServer(settings)
    server.start()
    try:
        alice = await live_token(server, "alice")
        auth = {"Authorization": f"Bearer {alice}"}
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            await asyncio.to_thread(private_redis.stop)

            async def degraded() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await eventually(degraded)
            members = await client.get("/api/rooms/lobby/members", headers=auth)
            assert members.status_code == 503
            assert members.headers["Retry-After"].isdigit()
            assert "detail" in members.json()
            post = await client.post("/api/rooms/lobby/messages", json={"text": "x"}, headers=auth)
            assert post.status_code == 503
            assert "detail" in post.json()
            await asyncio.to_thread(private_redis.start)

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready)
            page = await client.get("/api/rooms/lobby/messages", headers=auth)
            assert page.json()["messages"] == []  # the refused post was not stored
    finally:
        server.stop()
