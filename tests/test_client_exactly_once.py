"""The Python client sends exactly once: acknowledged socket sends, sent again after a
reconnect or a refusal, and keyed HTTP posts retried when no answer came."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy.exc

from roomchat.client import (
    Ack,
    Client,
    Disconnected,
    ErrorEvent,
    Message,
    MessageRefusedError,
    OutcomeUnknownError,
    Presence,
    Room,
)
from roomchat.store.queries import Queries
from tests.helpers import PASSWORD, free_port, live_token
from tests.live import LiveServer
from tests.test_client import FAST, next_of
from tests.waiting import eventually


async def all_stored(room: Room, client_ids: list[str], timeout: float = 60) -> None:
    """Wait until every one of ``client_ids`` is acknowledged, reading the room meanwhile
    (its events must keep moving for the acks to be read)."""

    async def acknowledged() -> None:
        for client_id in client_ids:
            await room.stored(client_id)

    async def read() -> None:
        async for _event in room:
            pass

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(acknowledged(), timeout)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def stored_texts(client: Client, room: str) -> list[str]:
    return [m.text async for m in client.iter_messages(room)]


async def test_a_send_is_acknowledged_with_the_id_of_its_message(live: LiveServer) -> None:
    await live_token(live, "alice")
    async with Client(live.http_url, username="alice", password=PASSWORD) as alice:
        async with alice.room("lobby") as room:
            await next_of(room, Presence)
            client_id = await room.send("hello")
            ack = await next_of(room, Ack)
            assert ack == Ack("lobby", client_id, ack.id)  # type: ignore[attr-defined]
            assert await room.stored(client_id) == ack.id
            assert room.unacked == ()
            # The same key again (a retry by hand) is answered with the first message.
            assert await room.send("hello", client_id=client_id) == client_id
            assert await room.stored(client_id) == ack.id
        assert await stored_texts(alice, "lobby") == ["hello"]


async def test_a_refusal_for_good_settles_the_send(live: LiveServer) -> None:
    await live_token(live, "alice")
    alice = Client(live.http_url, username="alice", password=PASSWORD)
    async with alice, alice.room("lobby") as room:
        client_id = await room.send("   ")
        refused = await next_of(room, ErrorEvent)
        assert isinstance(refused, ErrorEvent)
        assert refused == ErrorEvent("empty_text", refused.detail, client_id)
        with pytest.raises(MessageRefusedError) as error:
            await room.stored(client_id)
        assert error.value.code == "empty_text"
        assert room.unacked == ()


async def test_sends_across_server_restarts_are_all_stored_once(
    live_server: Callable[..., LiveServer],
) -> None:
    """Messages sent while the server restarts twice: each is acknowledged, none is lost
    or stored twice, though some were written to sockets that died unanswered."""
    total = 60
    server = live_server(messages_per_second=1000, message_burst=1000)
    await live_token(server, "alice")
    client = Client(server.http_url, username="alice", password=PASSWORD, backoff=FAST)
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        sent: list[str] = []
        for n in range(total):
            sent.append(await room.send(f"m{n}"))
            if n in (total // 3, 2 * total // 3):
                await asyncio.to_thread(server.restart)
        await all_stored(room, sent)
        assert room.reconnects >= 2
        assert room.unacked == ()
        assert await stored_texts(client, "lobby") == [f"m{n}" for n in range(total)]


async def test_an_abuse_close_reconnects_after_a_pause_and_sends_the_rest_once(
    live_server: Callable[..., LiveServer],
) -> None:
    """Far more at once than the burst: refused, closed for abuse; the room pauses,
    reconnects and sends again what was not stored, until every message is, once."""
    total = 40
    server = live_server(messages_per_second=50, message_burst=5)
    await live_token(server, "alice")
    client = Client(server.http_url, username="alice", password=PASSWORD, backoff=FAST)
    client.abuse_pause = 0.2
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        sent = [await room.send(f"m{n}") for n in range(total)]
        closed = await next_of(room, Disconnected)
        assert (closed.code, closed.reason) == (1008, "too many messages: slow down")  # type: ignore[attr-defined]

        await all_stored(room, sent)
        texts = await stored_texts(client, "lobby")
        assert sorted(texts) == sorted(f"m{n}" for n in range(total))
        assert len(texts) == len(set(texts))


class AnswerDropper:
    """A TCP proxy to a server that forwards each request but, on its first ``drops``
    connections, throws the server's answer away and hangs up: the request took effect,
    and the client never hears so (as when a response is lost or a read times out)."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self.port = free_port()
        self._upstream = upstream_port
        self._drops = drops
        self.dropped = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> AnswerDropper:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        drop = self.dropped < self._drops
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_pipe(reader, up_writer))
                if drop:
                    await up_reader.read(1)  # the server answered: it took the request
                    self.dropped += 1
                    writer.transport.abort()
                    up_writer.transport.abort()
                    raise _Dropped
                group.create_task(_pipe(up_reader, writer))
        except* (_Dropped, ConnectionError):
            pass
        finally:
            writer.close()
            up_writer.close()


class _Dropped(Exception):
    pass


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    sink.close()


@contextlib.asynccontextmanager
async def dropping(server: LiveServer, drops: int) -> AsyncIterator[AnswerDropper]:
    async with AnswerDropper(server.port, drops) as proxy:
        yield proxy


async def test_a_post_whose_answer_was_lost_is_retried_with_its_key_and_stored_once(
    live: LiveServer,
) -> None:
    token = await live_token(live, "alice")
    async with dropping(live, drops=1) as proxy, Client(proxy.url, token=token) as alice:
        message = await alice.post("lobby", "once")
        assert proxy.dropped == 1
    async with Client(live.http_url, token=token) as direct:
        stored = await direct.messages("lobby")
    assert [(m.id, m.text) for m in stored] == [(message.id, "once")]


async def test_a_post_never_answered_is_outcome_unknown_and_its_key_settles_it(
    live: LiveServer,
) -> None:
    token = await live_token(live, "alice")
    async with dropping(live, drops=2) as proxy, Client(proxy.url, token=token) as alice:
        with pytest.raises(OutcomeUnknownError) as unknown:
            await alice.post("lobby", "maybe", attempts=2)
    key = unknown.value.idempotency_key
    assert key
    async with Client(live.http_url, token=token) as direct:
        again = await direct.post("lobby", "maybe", idempotency_key=key)
        stored = await direct.messages("lobby")
    assert [(m.id, m.text) for m in stored] == [(again.id, "maybe")]


async def test_a_post_to_no_server_is_not_reached_not_unknown() -> None:
    from roomchat.client import ServerUnavailableError

    async with Client(f"http://127.0.0.1:{free_port()}", token="t", backoff=FAST) as c:
        with pytest.raises(ServerUnavailableError):
            await c.post("lobby", "nobody listens", attempts=2)


def test_transport_errors_are_sorted_by_whether_the_request_went_out() -> None:
    from roomchat.client.http import NOT_SENT

    assert issubclass(httpx.ConnectError, NOT_SENT)
    assert not issubclass(httpx.ReadTimeout, NOT_SENT)
    assert not issubclass(httpx.RemoteProtocolError, NOT_SENT)


def test_messages_of_a_send_are_typed() -> None:
    from roomchat.client.models import parse_event

    assert parse_event({"type": "ack", "client_id": "k", "id": 7, "room": "r"}, "r") == Ack(
        "r", "k", 7
    )
    error = {"type": "error", "code": "rate_limited", "detail": "d", "client_id": "k"}
    assert parse_event(error, "r") == ErrorEvent("rate_limited", "d", "k")
    assert isinstance(parse_event({"type": "message", **_message()}, "r"), Message)


def _message() -> dict[str, object]:
    return {"id": 1, "room": "r", "user": "u", "text": "t", "ts": "2026-01-01T00:00:00.000Z"}


async def test_sends_refused_during_an_outage_are_retried_one_at_a_time_and_stored_once(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything sent while the database refuses is refused (``store_unavailable``);
    the room sends it again one message at a time, backing off while refusals go on, so
    the retries never come as a flood: the socket is never closed for abuse, and every
    message is stored once the database is back. (``make chaos`` found the flood: each
    refused message retried on its own timer, all at once, closed the socket 1008.)"""
    total = 30
    server = live_server(messages_per_second=10, message_burst=40)
    await live_token(server, "alice")
    client = Client(server.http_url, username="alice", password=PASSWORD, backoff=FAST)
    outage = Outage(monkeypatch)
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        outage.begin()
        sent = [await room.send(f"m{n}") for n in range(total)]
        await eventually(lambda: outage.refused >= total)
        outage.end()

        await all_stored(room, sent)
        assert room.reconnects == 0
        assert sorted(await stored_texts(client, "lobby")) == sorted(f"m{n}" for n in range(total))


class Outage:
    """While on, every message commit fails as a database gone away would (the server
    runs in this process: its store's one group commit is patched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._on = False
        self.refused = 0
        outage = self
        real_add = Queries.add_messages_to_rooms

        async def add(self: Any, *, drafts: Any, wait: float | None = None) -> Any:
            if outage._on:
                outage.refused += sum(len(batch) for batch in drafts.values())
                raise sqlalchemy.exc.OperationalError("INSERT", {}, OSError("database away"))
            return await real_add(self, drafts=drafts, wait=wait)

        monkeypatch.setattr(Queries, "add_messages_to_rooms", add)

    def begin(self) -> None:
        self._on = True

    def end(self) -> None:
        self._on = False
