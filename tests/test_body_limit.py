"""ROOMCHAT_MAX_BODY_BYTES: a body past it is answered 413 while it streams in, never held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from tests.conftest import PASSWORD, live_token
from tests.helpers import SECURITY_HEADERS
from tests.live import LiveServer
from tests.rawhttp import RawHTTP
from tests.rss import MIB, PeakRSS

#: Bodies are refused before any route reads them: these run once.
pytestmark = pytest.mark.embedded_only

HUGE = 200 * MIB
CHUNK = b"a" * (64 * 1024)


class Upload:
    """A register body of ``size`` bytes, made as it is sent; counts what was sent."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0

    def chunks(self) -> Iterator[bytes]:
        head = b'{"username": "alice", "password": "'
        tail = b'"}'
        yield head
        self.sent += len(head)
        left = self.size - len(head) - len(tail)
        while left > 0:
            chunk = CHUNK[:left]
            yield chunk
            self.sent += len(chunk)
            left -= len(chunk)
        yield tail
        self.sent += len(tail)


def post_upload(url: str, upload: Upload, *, declared: bool) -> httpx.Response:
    """A blocking client, as curl or requests: when the server stops reading and closes,
    its write fails, and it reads the answer the server sent. (httpx's asyncio client
    cannot: its transport closes itself on the write error and loses what it had not
    read yet.)"""
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(upload.size)
    with httpx.Client(base_url=url, timeout=60) as client:
        return client.post("/api/auth/register", content=upload.chunks(), headers=headers)


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_a_200_mb_register_body_gets_413_and_is_never_held(
    live: LiveServer, declared: bool
) -> None:
    upload = Upload(HUGE)
    with PeakRSS() as rss:
        response = await asyncio.to_thread(post_upload, live.http_url, upload, declared=declared)
    assert response.status_code == 413, response.text[:200]
    assert "detail" in response.json()
    assert response.headers["connection"] == "close"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    # The server stopped reading: the client could not even hand it all to the kernel.
    assert upload.sent < HUGE // 4, f"the client sent {upload.sent // MIB} MiB"
    assert rss.growth < 64 * MIB, f"RSS grew {rss.growth // MIB} MiB"


async def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    live: LiveServer,
) -> None:
    connection = RawHTTP(live.port)
    try:
        await connection.send(
            b"POST /api/auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + f"Content-Length: {HUGE}\r\n\r\n".encode()
        )
        response = await connection.response()  # not one byte of the body was sent
        assert response.status == 413
        assert "detail" in response.json()
        assert response.headers["connection"] == "close"
        assert await connection.closed_by_server()
    finally:
        connection.close()


async def test_the_limit_is_the_setting_and_a_body_at_it_is_still_read(
    live_server: Callable[..., LiveServer],
) -> None:
    limit = 4096
    server = live_server(max_body_bytes=limit)
    prefix = f'{{"username": "bob", "password": "{PASSWORD}", "pad": "'.encode()

    def body(size: int) -> bytes:
        return prefix + b"p" * (size - len(prefix) - 2) + b'"}'

    async def stream(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        for content in (body(limit), stream(body(limit))):
            at_limit = await client.post("/api/auth/register", content=content, headers=headers)
            assert at_limit.status_code == 422  # read and parsed: "pad" is not a field
        for content in (body(limit + 1), stream(body(limit + 1))):
            over = await client.post("/api/auth/register", content=content, headers=headers)
            assert over.status_code == 413
            assert over.json()["detail"] == f"request body larger than {limit} bytes"


async def test_a_login_form_over_the_limit_gets_413(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(max_body_bytes=4096)
    await live_token(server, "alice")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        form = {"username": "alice", "password": "x" * 5000}
        response = await client.post("/api/auth/token", data=form)
    assert response.status_code == 413
    assert "detail" in response.json()


async def test_a_body_nobody_reads_is_not_read_either(live: LiveServer) -> None:
    """A 404 does not read the body; the server closes instead of draining it for ever."""
    connection = RawHTTP(live.port)
    try:
        await connection.send(
            b"POST /no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"a" * 0x1000 + b"\r\n"
        )
        response = await connection.response()
        assert response.status == 404
        assert response.headers["connection"] == "close"
        assert await connection.closed_by_server()
    finally:
        connection.close()
