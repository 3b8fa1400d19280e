"""The Python client against a live server: HTTP calls, typed room events, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from jose import jwt
from prometheus_client.parser import text_string_to_metric_families

from roomchat.accounts.security import create_access_token
from roomchat.client import (
    AuthenticationError,
    Backoff,
    Client,
    ErrorEvent,
    HandshakeRefusedError,
    HTTPError,
    Join,
    Leave,
    Message,
    Presence,
    Room,
    RoomClosedError,
    ServerUnavailableError,
    Typing,
)
from roomchat.client.http import token_expires_at
from roomchat.client.models import parse_event
from tests.conftest import PASSWORD, TEST_SECRET, live_token
from tests.live import LiveServer

FAST = Backoff(initial=0.05, maximum=0.5)
TIMEOUT = 10.0


async def next_of(room: Room, kind: type, timeout: float = TIMEOUT) -> object:
    """The next event of ``kind``, skipping others."""
    async with asyncio.timeout(timeout):
        async for event in room:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the room ended before a {kind.__name__}")


async def drain(room: Room, timeout: float = TIMEOUT) -> None:
    """Read every event until the room ends."""
    async with asyncio.timeout(timeout):
        async for _event in room:
            pass


#: A token meant to expire mid-session must outlive a connect and a round trip on a loaded
#: machine first, or the handshake refuses it (401) and the test sees another path.
MID_SESSION_EXPIRY = 4.0


def short_token(username: str, seconds: float, secret: str = TEST_SECRET) -> str:
    """A valid token that expires in ``seconds``, minted as a trusted backend may (issued
    now: one issued before the account was created would be refused)."""
    now = datetime.now(UTC).timestamp()
    claims = {"sub": username, "iat": int(now), "exp": now + seconds}
    return str(jwt.encode(claims, secret, algorithm="HS256"))


async def test_http_calls(live: LiveServer) -> None:
    await live_token(live, "alice")
    async with Client(live.http_url, username="alice", password=PASSWORD) as client:
        assert (await client.me()).username == "alice"
        posted = [await client.post("lobby", f"m{n}") for n in range(5)]
        assert [m.text for m in posted] == [f"m{n}" for n in range(5)]
        assert posted[0].user == "alice"
        assert posted[0].room == "lobby"
        assert posted[0].time.tzinfo is not None
        page = await client.messages("lobby", limit=2)
        assert [m.id for m in page] == [m.id for m in posted[-2:]]
        older = await client.messages("lobby", limit=2, before=page[0].id)
        assert [m.text for m in older] == ["m1", "m2"]
        after = [m.text async for m in client.iter_messages("lobby", after=posted[0].id, page=2)]
        assert after == ["m1", "m2", "m3", "m4"]
        assert [(r.name, r.members) for r in await client.rooms()] == [("lobby", 0)]
        await client.post("attic", "up here")
        assert [r.name for r in await client.rooms(limit=1, after="attic")] == ["lobby"]
        assert [r.name async for r in client.iter_rooms(page=1)] == ["attic", "lobby"]
        async with client.room("lobby") as room:
            assert (await next_of(room, Presence)) == Presence("lobby", ("alice",))
            assert await client.members("lobby") == ["alice"]
        with pytest.raises(HTTPError) as refused:
            await client.messages("lobby", limit=500)
        assert refused.value.status_code == 422


async def test_room_events_are_typed_and_history_comes_first(live: LiveServer) -> None:
    for name in ("alice", "bob"):
        await live_token(live, name)
    alice = Client(live.http_url, username="alice", password=PASSWORD)
    bob = Client(live.http_url, username="bob", password=PASSWORD)
    async with alice, bob:
        await alice.post("lobby", "before")
        async with alice.room("lobby") as room:
            first = await next_of(room, Message)
            assert isinstance(first, Message)
            assert first.text == "before"
            assert (await next_of(room, Presence)) == Presence("lobby", ("alice",))
            await room.send("hello")
            hello = await next_of(room, Message)
            assert isinstance(hello, Message)
            assert (hello.user, hello.text) == ("alice", "hello")
            async with bob.room("lobby") as bobs:
                assert (await next_of(room, Join)) == Join("lobby", "bob")
                await bobs.typing()
                assert (await next_of(room, Typing)) == Typing("lobby", "bob")
            assert (await next_of(room, Leave)) == Leave("lobby", "bob")
            await room.send("   ")
            refused = await next_of(room, ErrorEvent)
            assert isinstance(refused, ErrorEvent)
            assert refused.code == "empty_text"
        assert room.last_id == hello.id


async def test_a_recovery_past_the_limit_is_completed_over_http(
    live_server: Callable[..., LiveServer],
) -> None:
    """since=0 on a room of 12 with RECOVERY_LIMIT 3: the frame holds 3 and ``more``; the
    room yields the others (fetched with after=), then the live messages, each once."""
    server = live_server(recovery_limit=3, messages_per_second=1000, message_burst=1000)
    for name in ("alice", "bob"):
        await live_token(server, name)
    alice = Client(server.http_url, username="alice", password=PASSWORD)
    bob = Client(server.http_url, username="bob", password=PASSWORD)
    async with alice, bob:
        for n in range(12):
            await alice.post("lobby", f"m{n}")
        async with bob.room("lobby", since=0) as room:
            texts = [(await next_of(room, Message)).text for _ in range(12)]  # type: ignore[union-attr]
            await alice.post("lobby", "live")
            live = await next_of(room, Message)
    assert texts == [f"m{n}" for n in range(12)]
    assert isinstance(live, Message)
    assert live.text == "live"


async def test_reconnect_across_server_restarts_during_traffic_loses_and_doubles_nothing(
    live_server: Callable[..., LiveServer],
) -> None:
    """A consumer mid-stream while the server restarts twice and a writer keeps posting."""
    total = 150
    server = live_server(messages_per_second=1000, message_burst=1000)
    for name in ("reader", "writer"):
        await live_token(server, name)
    received: list[Message] = []
    reached = {total // 3: asyncio.Event(), 2 * total // 3: asyncio.Event()}
    reader = Client(server.http_url, username="reader", password=PASSWORD, backoff=FAST)
    writer = Client(server.http_url, username="writer", password=PASSWORD, backoff=FAST)
    async with reader, writer, reader.room("lobby") as room:

        async def consume() -> None:
            async for event in room:
                if isinstance(event, Message):
                    received.append(event)
                    if len(received) in reached:
                        reached[len(received)].set()
                    if len(received) == total:
                        return

        async def produce() -> None:
            for n in range(total):
                await post_exactly_once(writer, "lobby", f"m{n}")
                await asyncio.sleep(0.005)  # pacing, so that the restarts fall mid-stream

        consumer = asyncio.create_task(consume())
        producer = asyncio.create_task(produce())
        for event in reached.values():
            await asyncio.wait_for(event.wait(), 30)
            await asyncio.to_thread(server.restart)
        await asyncio.wait_for(asyncio.gather(producer, consumer), 60)

    assert [m.text for m in received] == [f"m{n}" for n in range(total)]
    assert [m.id for m in received] == sorted({m.id for m in received})
    assert room.reconnects >= 2


async def post_exactly_once(client: Client, room: str, text: str) -> None:
    """Post; when no answer came, look whether it was stored before posting again."""
    while True:
        try:
            await client.post(room, text)
            return
        except ServerUnavailableError:
            await asyncio.sleep(0.05)  # pacing while the server is down
        try:
            if any(m.text == text for m in await client.messages(room, limit=20)):
                return
        except ServerUnavailableError:
            continue


@pytest.mark.embedded_only
async def test_a_consumer_too_slow_for_its_queue_is_dropped_and_catches_up(
    live_server: Callable[..., LiveServer],
) -> None:
    """The server closes a socket whose queue overflows (1013); the room resumes from since."""
    total = 150  # 450 KB: more than the socket buffers between the two can hold
    server = live_server(
        send_queue_bytes=1024,
        send_buffer_bytes=4096,
        messages_per_second=1000,
        message_burst=1000,
        metrics_enabled=True,
    )
    for name in ("slow", "fast"):
        await live_token(server, name)
    slow = Client(server.http_url, username="slow", password=PASSWORD, backoff=FAST)
    fast = Client(server.http_url, username="fast", password=PASSWORD)
    async with slow, fast, slow.room("lobby", queue_size=1) as room:
        big = "x" * 3000
        await asyncio.gather(*(fast.post("lobby", f"{n} {big}") for n in range(total)))
        received: list[Message] = []
        async with asyncio.timeout(30):
            async for event in room:
                if isinstance(event, Message):
                    received.append(event)
                    if len(received) == total:
                        break
    assert sorted(int(m.text.split()[0]) for m in received) == list(range(total))
    assert [m.id for m in received] == sorted({m.id for m in received})
    assert room.reconnects >= 1
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{server.http_url}/metrics")).text
    assert metric_value(metrics, "roomchat_queue_overflows_total") >= 1
    assert metric_value(metrics, "roomchat_server_closes_total", code="1013") >= 1


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when it is absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def test_expired_token_with_credentials_logs_in_again_and_resumes(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    await live_token(server, "alice")
    token = short_token("alice", seconds=MID_SESSION_EXPIRY)
    client = Client(server.http_url, username="alice", password=PASSWORD, token=token)
    client.refresh_margin = 0.0  # keep the short token until the server closes with 1008
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        await room.send("one")
        assert getattr(await next_of(room, Message), "text", None) == "one"
        # The server closes at expiry (1008); the client logs in again and resumes.
        assert (await next_of(room, Presence)) == Presence("lobby", ("alice",))
        assert room.reconnects == 1
        assert client.token != token
        await room.send("two")
        assert getattr(await next_of(room, Message), "text", None) == "two"


async def test_a_token_that_expires_while_the_server_is_down_is_renewed_once_it_is_back(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    await live_token(server, "alice")
    token = short_token("alice", seconds=2)
    client = Client(server.http_url, username="alice", password=PASSWORD, token=token, backoff=FAST)
    client.refresh_margin = 0.0
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        await asyncio.to_thread(server.stop)
        expires_at = token_expires_at(token)
        assert expires_at is not None
        await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.5)  # let the token expire
        await asyncio.to_thread(server.start)  # logging in failed meanwhile: retried, not fatal
        assert (await next_of(room, Presence)) == Presence("lobby", ("alice",))
        assert client.token != token


@pytest.mark.embedded_only  # the socket's own expiry timer: no backend takes part
async def test_expired_token_without_credentials_is_a_clear_error(live: LiveServer) -> None:
    await live_token(live, "alice")
    token = short_token("alice", seconds=MID_SESSION_EXPIRY)
    async with Client(live.http_url, token=token) as client:
        async with client.room("lobby") as room:
            with pytest.raises(RoomClosedError) as closed:
                await drain(room)
        assert closed.value.code == 1008
    async with Client(live.http_url, token=short_token("alice", seconds=-5)) as client:
        with pytest.raises(HandshakeRefusedError) as refused:
            await client.room("lobby").__aenter__()
        assert refused.value.status_code == 401
        with pytest.raises(AuthenticationError):
            await client.me()


async def test_a_refused_token_with_credentials_logs_in_once_more(live: LiveServer) -> None:
    await live_token(live, "alice")
    forged = short_token("alice", seconds=600, secret="another-secret-that-is-long-enough-0123")
    async with Client(live.http_url, username="alice", password=PASSWORD, token=forged) as c:
        assert (await c.me()).username == "alice"  # HTTP 401, log in, retry
        fresh = c.token
    async with Client(live.http_url, username="alice", password=PASSWORD, token=forged) as c:
        async with c.room("lobby") as room:  # handshake 401, log in, retry
            await next_of(room, Presence)
        assert c.token != forged
        assert fresh != forged


async def test_refusals_and_closes_raise_clear_errors(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(max_frame_bytes=256)
    await live_token(server, "alice")
    with pytest.raises(AuthenticationError) as wrong:
        await Client(server.http_url, username="alice", password="wrong password").__aenter__()
    assert wrong.value.status_code == 401
    async with Client(server.http_url, username="alice", password=PASSWORD) as client:
        with pytest.raises(HandshakeRefusedError) as bad_room:
            await client.room("no spaces").__aenter__()
        assert bad_room.value.status_code == 422
        async with client.room("lobby") as room:
            await room.send("x" * 1000)
            with pytest.raises(RoomClosedError) as too_big:
                await next_of(room, Message)
            assert too_big.value.code == 1009
            with pytest.raises(RoomClosedError):
                await room.send("after the end")
    with pytest.raises(ServerUnavailableError):
        async with Client("http://127.0.0.1:9", token="t") as unreachable:
            await unreachable.me()


async def test_a_room_gives_up_after_its_attempts(live_server: Callable[..., LiveServer]) -> None:
    server = live_server()
    await live_token(server, "alice")
    backoff = Backoff(initial=0.01, maximum=0.05, attempts=3)
    client = Client(server.http_url, username="alice", password=PASSWORD, backoff=backoff)
    async with client, client.room("lobby") as room:
        await next_of(room, Presence)
        await asyncio.to_thread(server.stop)
        with pytest.raises(ServerUnavailableError, match="3 reconnect attempts"):
            await next_of(room, Message)


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, attempts=5)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (10_000, 4.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2
        assert min(delays) < ceiling / 2
    assert not backoff.exhausted(4)
    assert backoff.exhausted(5)
    assert not Backoff().exhausted(10**6)


def test_tokens_and_frames_are_read_safely() -> None:
    token = create_access_token(subject="alice", secret_key=TEST_SECRET, minutes=5)
    expires_at = token_expires_at(token)
    assert expires_at is not None
    assert abs(expires_at - (datetime.now(UTC) + timedelta(minutes=5)).timestamp()) < 5
    assert token_expires_at("not.a-token") is None
    assert token_expires_at("") is None
    assert parse_event({"type": "from-the-future"}, "lobby") is None
    assert parse_event({"type": "leave", "room": "r", "user": "u"}, "lobby") == Leave("r", "u")
    with pytest.raises(ValueError, match="token="):
        Client("http://127.0.0.1:8000", username="alice")
