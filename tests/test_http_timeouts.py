"""``ROOMCHAT_IDLE_TIMEOUT_SECONDS``: an HTTP connection idle, or sending its head or body
too slowly, is closed (API.md, version 2 limits); a WebSocket upgrade too large for the
WebSocket layer, or any request head over 64 KiB, is answered and closed. Raw sockets on
a real server, with a one-second timeout so that the tests are quick.

Under ``roomchat serve``'s protocols only: plain uvicorn has no head or body timeout
(README, "What only `roomchat serve` enforces").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import ValidationError

from roomchat.config import Settings
from roomchat.server import uvicorn_options
from roomchat.server.http_protocol import RoomchatHttpProtocol
from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, recv_type, room_url

#: The HTTP protocol's deadlines know no backend: these run once.
pytestmark = pytest.mark.embedded_only

TIMEOUT = 1.0
#: How much later than due a loaded machine may close a connection.
MARGIN = 2.0
#: How long a test waits for an answer that never comes on today's uvicorn.
NEVER = TIMEOUT + MARGIN + 3.0
#: One byte every this often: slower than any sane client, faster than the timeout.
DRIP_SECONDS = 0.2


class Raw:
    """One TCP connection to the server, read and written byte by byte as a test asks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_to_eof(self, timeout: float = NEVER) -> bytes:
        """Everything the server sends until it closes the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""

    async def drip_until_closed(self, data: bytes) -> tuple[float | None, bytes]:
        """Send ``data`` one byte every ``DRIP_SECONDS``; when the server closes the
        connection before the last byte, the seconds that took and what it answered
        (None if it let the client finish, or never closed)."""
        started = time.monotonic()

        async def drip() -> None:
            for byte in data:
                try:
                    await self.send(bytes([byte]))
                except ConnectionError:
                    return
                await asyncio.sleep(DRIP_SECONDS)  # the attack itself: a slow client

        dripping = asyncio.create_task(drip())
        try:
            answer = await self.read_to_eof(timeout=len(data) * DRIP_SECONDS + NEVER)
        finally:
            finished = dripping.done()
            dripping.cancel()
        return (None if finished else time.monotonic() - started), answer

    async def get(self, path: str) -> tuple[bytes, bytes]:
        """One keep-alive GET on this connection: the response's head and body."""
        await self.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), NEVER)
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        return head, await asyncio.wait_for(self.reader.readexactly(length), NEVER)


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server(idle_timeout_seconds=TIMEOUT)


@pytest.fixture
async def raw(server: LiveServer) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    yield Raw(reader, writer)
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(raw: Raw) -> None:
    started = time.monotonic()
    assert await raw.read_to_eof() == b""  # closed without a word
    assert time.monotonic() - started < TIMEOUT + MARGIN


async def test_a_kept_alive_connection_left_idle_is_closed(raw: Raw) -> None:
    head, _ = await raw.get("/healthz")
    assert head.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert await raw.read_to_eof() == b""
    # uvicorn's own keep-alive timeout is 5 s: this one is the idle timeout.
    assert time.monotonic() - started < TIMEOUT + MARGIN


async def test_a_head_sent_too_slowly_is_answered_408_and_closed(raw: Raw) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    await raw.send(head[:16])
    closed_after, answer = await raw.drip_until_closed(head[16:])
    assert closed_after is not None, "the server waited for the whole slow head"
    assert closed_after < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "request timeout"}


async def test_a_body_sent_too_slowly_is_answered_408_and_closed(raw: Raw) -> None:
    body = json.dumps({"username": "slowpoke", "password": "x" * 40}).encode()
    head = (
        b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    await raw.send(head)
    closed_after, answer = await raw.drip_until_closed(body)
    assert closed_after is not None, "the server waited for the whole slow body"
    assert closed_after < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408")


async def test_a_busy_kept_alive_connection_and_a_socket_outlive_the_timeout(
    server: LiveServer, raw: Raw
) -> None:
    """The timeout is per idle spell and per request, not per connection."""
    token = await live_token(server, "alice")
    async with await open_socket(room_url(server.ws_url, "lobby", token)) as ws:
        assert (await recv(ws))["type"] == "history"
        started, requests = time.monotonic(), 0
        while time.monotonic() - started < 3 * TIMEOUT:
            head, _ = await raw.get("/healthz")  # the same connection every time
            assert head.startswith(b"HTTP/1.1 200")
            requests += 1
            await ws.send(f"message {requests}")
            assert (await recv_type(ws, "message"))["text"] == f"message {requests}"
            await asyncio.sleep(TIMEOUT / 2)  # idle spells shorter than the timeout
        assert requests >= 4


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /ws/lobby?x=" + b"a" * 9000 + b" HTTP/1.1\r\n", b"414"),
        (
            b"GET /ws/lobby HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(130)),
            b"431",
        ),
    ],
    ids=["uri-over-8-KiB", "over-128-headers"],
)
async def test_an_oversized_websocket_upgrade_is_answered_and_closed(
    raw: Raw, request_head: bytes, status: bytes
) -> None:
    await raw.send(
        request_head
        + b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = await raw.read_to_eof()
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert "detail" in json.loads(answer.split(b"\r\n\r\n", 1)[1])


async def test_a_request_head_over_64_kib_is_answered_431_and_closed(raw: Raw) -> None:
    """httptools alone takes a header of megabytes."""
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for _ in range(100):  # 100 KB of headers, in pieces as a network delivers them
        try:
            await raw.send(b"X-Filler: " + b"f" * 1000 + b"\r\n")
        except ConnectionError:
            break
    answer = await raw.read_to_eof()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_the_timeout_is_30_s_by_default_and_reaches_roomchat_serve() -> None:
    settings = Settings(_env_file=None)
    assert settings.idle_timeout_seconds == 30  # API.md
    http = uvicorn_options(settings.model_copy(update={"idle_timeout_seconds": 7}))["http"]
    assert http.func is RoomchatHttpProtocol
    assert http.keywords == {"idle_timeout": 7}
    for bad in (0, -1, "soon"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, idle_timeout_seconds=bad)
