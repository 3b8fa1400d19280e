"""Exactly-once sends (API.md, version 2): a message frame's ``client_id`` or a post's
``Idempotency-Key`` stores a message once per user, room and 24 hours.

The key's sender hears ``{"type": "ack", "room", "client_id", "id"}`` on its socket (or
its ``201``), for a repeat too, and the room receives the message once. Every error that
answers a keyed message frame names its ``client_id``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from websockets.asyncio.client import ClientConnection

from roomchat import store
from roomchat.store import statements
from roomchat.store.engine import create_engine
from tests import services
from tests.helpers import ALLOW_INSERTS, REFUSE_INSERTS, live_token
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import TIMEOUT, join, new_member, recv, recv_type


def keyed(text: str, client_id: Any) -> str:
    return json.dumps({"type": "message", "text": text, "client_id": client_id})


async def post(
    server: LiveServer, token: str, body: str, key: str | bytes | None = None, room: str = "lobby"
) -> httpx.Response:
    headers = {b"Authorization": f"Bearer {token}".encode()}
    if key is not None:  # bytes: as a client may send them, UTF-8 or not
        headers[b"Idempotency-Key"] = key if isinstance(key, bytes) else key.encode()
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        url = f"/api/rooms/{room}/messages"
        return await client.post(url, json={"text": body}, headers=headers)


async def stored_texts(server: LiveServer, token: str, room: str = "lobby") -> list[str]:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.get(
            f"/api/rooms/{room}/messages", headers={"Authorization": f"Bearer {token}"}
        )
    return [message["text"] for message in response.json()["messages"]]


async def first_of_each(ws: ClientConnection, kinds: set[str]) -> dict[str, dict[str, Any]]:
    """The first frame of each of these types, whatever their order (an ack and the room's
    message event race: one is the writer's answer, the other the room's fan-out)."""
    found: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(TIMEOUT):
        while set(found) != kinds:
            frame = await recv(ws)
            if frame["type"] in kinds:
                found.setdefault(frame["type"], frame)
    return found


async def next_text(ws: ClientConnection) -> str:
    text_: str = (await recv_type(ws, "message"))["text"]
    return text_


async def test_a_key_sent_twice_on_one_socket_stores_one_message(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    bob = await new_member(live, "bob")
    await alice.ws.send(keyed("hello", "k-1"))
    ack = await recv_type(alice.ws, "ack")
    assert ack == {"type": "ack", "room": "lobby", "client_id": "k-1", "id": ack["id"]}
    delivered = await recv_type(bob.ws, "message")
    assert (delivered["id"], delivered["text"]) == (ack["id"], "hello")

    await alice.ws.send(keyed("hello, again?", "k-1"))  # a retry: even its text is ignored
    assert await recv_type(alice.ws, "ack") == ack
    # No ack for a message without a key: the next ack is the next keyed message's.
    await alice.ws.send("no key")
    await alice.ws.send(keyed("keyed", "k-2"))
    assert (await recv_type(alice.ws, "ack"))["client_id"] == "k-2"
    # The room got the repeat nothing: bob's next messages are the two after it.
    assert [await next_text(bob.ws), await next_text(bob.ws)] == ["no key", "keyed"]
    assert await stored_texts(live, alice.token) == ["hello", "no key", "keyed"]
    await alice.ws.close()
    await bob.ws.close()


async def test_the_same_key_after_a_reconnect_is_answered_with_the_first_message(
    live: LiveServer,
) -> None:
    token = await live_token(live, "alice")
    first, _, _ = await join(live, "lobby", token)
    await first.send(keyed("once", "reconnect-key"))
    ack = await recv_type(first, "ack")
    await first.close()  # as if the ack never arrived: the client sends again

    second, history, _ = await join(live, "lobby", token)
    assert [m["text"] for m in history["messages"]] == ["once"]
    await second.send(keyed("once", "reconnect-key"))
    assert await recv_type(second, "ack") == ack
    await second.send("sentinel")
    assert await next_text(second) == "sentinel"  # no second "once" ahead of it
    assert await stored_texts(live, token) == ["once", "sentinel"]
    await second.close()


async def test_the_same_key_over_http_twice_answers_the_same_201(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    watcher = await new_member(live, "bob")
    first = await post(live, token, "over http", key="http-key")
    again = await post(live, token, "over http", key="http-key")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert first.json()["text"] == "over http"
    assert (await post(live, token, "after")).status_code == 201
    assert [await next_text(watcher.ws), await next_text(watcher.ws)] == ["over http", "after"]
    assert await stored_texts(live, token) == ["over http", "after"]
    await watcher.ws.close()


async def test_http_and_sockets_share_a_users_keys_in_a_room(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    posted = await post(live, alice.token, "posted first", key="shared")
    await alice.ws.send(keyed("then sent", "shared"))
    assert (await recv_type(alice.ws, "ack"))["id"] == posted.json()["id"]
    # And the other way round.
    await alice.ws.send(keyed("sent first", "shared-2"))
    ack = await recv_type(alice.ws, "ack")
    reposted = await post(live, alice.token, "then posted", key="shared-2")
    assert (reposted.status_code, reposted.json()["id"]) == (201, ack["id"])
    assert reposted.json()["text"] == "sent first"
    # A key is its room's: the same one in another room is a new message.
    elsewhere = await post(live, alice.token, "attic", key="shared", room="attic")
    assert elsewhere.json()["id"] != posted.json()["id"]
    assert await stored_texts(live, alice.token) == ["posted first", "sent first"]
    await alice.ws.close()


async def test_two_users_with_one_key_store_two_messages(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    bob = await new_member(live, "bob")
    await alice.ws.send(keyed("from alice", "same-key"))
    from_alice = await recv_type(alice.ws, "ack")
    await bob.ws.send(keyed("from bob", "same-key"))
    from_bob = await recv_type(bob.ws, "ack")
    assert from_bob["id"] > from_alice["id"]
    assert await stored_texts(live, alice.token) == ["from alice", "from bob"]
    await alice.ws.close()
    await bob.ws.close()


async def test_a_key_older_than_24_hours_is_new_again(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    first = (await post(live, token, "yesterday", key="daily")).json()
    engine = create_engine(live.settings.database_url)  # the server's own database
    messages = statements.messages
    try:
        async with engine.begin() as connection:
            row = messages.c.id == first["id"]
            created = (await connection.execute(select(messages.c.created_at).where(row))).scalar()
            assert created is not None
            aged = created - store.CLIENT_ID_WINDOW
            await connection.execute(update(messages).where(row).values(created_at=aged))
    finally:
        await engine.dispose()
    again = await post(live, token, "today", key="daily")
    assert again.status_code == 201
    assert again.json()["id"] > first["id"]
    assert await stored_texts(live, token) == ["yesterday", "today"]


async def test_a_key_repeated_in_one_batch_stores_once(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    bob = await new_member(live, "bob")
    # Back to back on one socket: read together, so the writer takes them in one batch.
    await alice.ws.send(keyed("twice", "batch-key"))
    await alice.ws.send(keyed("twice", "batch-key"))
    acks = [await recv_type(alice.ws, "ack"), await recv_type(alice.ws, "ack")]
    assert acks[0] == acks[1]
    await alice.ws.send("sentinel")
    assert [await next_text(bob.ws), await next_text(bob.ws)] == ["twice", "sentinel"]
    assert await stored_texts(live, alice.token) == ["twice", "sentinel"]
    await alice.ws.close()
    await bob.ws.close()


async def test_every_error_answering_a_keyed_message_names_its_key(
    live_server: Callable[..., LiveServer],
) -> None:
    # Each refusal is a strike too: a burst of 6 holds the four, then a rate_limited one.
    server = live_server(message_burst=6, messages_per_second=0.01, max_message_chars=10)
    alice = await new_member(server, "alice")
    refused = {
        "empty_text": keyed("   ", "k-empty"),
        "text_too_long": keyed("x" * 11, "k-long"),
        "bad_text": json.dumps({"type": "message", "text": 5, "client_id": "k-text"}),
        "unknown_field": json.dumps({"type": "message", "text": "a", "client_id": "k-f", "x": 1}),
    }
    for code, frame in refused.items():
        await alice.ws.send(frame)
        error = await recv_type(alice.ws, "error")
        assert (error["code"], error["client_id"]) == (code, json.loads(frame)["client_id"])
    for n in range(7):  # a burst of 6: the seventh is over the rate
        await alice.ws.send(keyed(f"m{n}", f"rate-{n}"))
    error = await recv_type(alice.ws, "error")
    assert (error["code"], error["client_id"]) == ("rate_limited", "rate-6")
    await alice.ws.close()


async def test_a_bad_client_id_is_refused_and_stores_nothing(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    for bad in ["", "x" * 65, " leading", "trailing ", "tab\there", "é", 7, None]:
        await alice.ws.send(keyed("not stored", bad))
        error = await recv_type(alice.ws, "error")
        assert error["code"] == "bad_client_id", (bad, error)
        assert "client_id" not in error
        assert len(error["detail"]) < 200
    await alice.ws.send(keyed("stored", "x" * 64))  # the longest key, printable ASCII
    assert (await recv_type(alice.ws, "ack"))["client_id"] == "x" * 64
    await alice.ws.send(keyed("stored too", "a b!~"))
    assert (await recv_type(alice.ws, "ack"))["client_id"] == "a b!~"
    bad_headers: list[str | bytes] = ["x" * 65, "é".encode()]
    for bad_header in bad_headers:
        response = await post(live, alice.token, "not stored", key=bad_header)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await stored_texts(live, alice.token) == ["stored", "stored too"]
    await alice.ws.close()


async def test_a_failed_store_names_the_key_and_a_retry_stores_it(live: LiveServer) -> None:
    alice = await new_member(live, "alice")
    engine = create_engine(live.settings.database_url)
    dialect = engine.dialect.name

    async def run(sql: list[str]) -> None:
        async with engine.begin() as connection:
            for statement in sql:
                await connection.execute(text(statement))

    try:
        await run(REFUSE_INSERTS[dialect])  # a real database error
        await alice.ws.send(keyed("refused", "retry-me"))
        error = await recv_type(alice.ws, "error")
        assert (error["code"], error["client_id"]) == ("store_unavailable", "retry-me")
        await run(ALLOW_INSERTS[dialect])
    finally:
        await engine.dispose()
    await alice.ws.send(keyed("refused", "retry-me"))  # nothing was stored: now it is
    frames = await first_of_each(alice.ws, {"ack", "message"})  # in either order
    assert frames["ack"]["id"] == frames["message"]["id"]
    assert await stored_texts(live, alice.token) == ["refused"]
    await alice.ws.close()


@pytest.mark.embedded_only  # its own redis-server, stopped and started
async def test_a_send_refused_while_redis_is_away_names_its_key(
    live_server: Callable[..., LiveServer], private_redis: services.PrivateRedis
) -> None:
    server = live_server(redis_url=private_redis.url, redis_prefix="once")
    alice = await new_member(server, "alice")
    await asyncio.to_thread(private_redis.stop)
    # Until the broker notices, a send may still be stored (and acked); then it is refused.
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(TIMEOUT):
        for n in itertools.count():
            await alice.ws.send(keyed("while away", f"away-{n}"))
            answer = await first_answer_to(alice.ws, f"away-{n}")
            if answer["type"] == "error":
                answers[answer["code"]] = answer
                break
    assert answers["unavailable"]["client_id"] == f"away-{n}"
    await asyncio.to_thread(private_redis.start)

    async def resent() -> bool:  # the same key once Redis is back: stored now, once
        await alice.ws.send(keyed("while away", f"away-{n}"))
        answer = await first_answer_to(alice.ws, f"away-{n}")
        return bool(answer["type"] == "ack")

    await eventually(resent, TIMEOUT)
    assert (await stored_texts(server, alice.token)).count("while away") == n + 1
    await alice.ws.close()


async def first_answer_to(ws: ClientConnection, client_id: str) -> dict[str, Any]:
    """The ack or error frame that answers the message sent with ``client_id``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = await recv(ws)
            if frame["type"] in ("ack", "error") and frame.get("client_id") == client_id:
                return frame
