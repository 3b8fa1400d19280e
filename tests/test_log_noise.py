"""What anyone can make the server log: a refused handshake is one info line, and a
client that drops at once leaves no traceback. The real server's output.

The refusal is logged as an error by plain uvicorn's own protocol, which roomchat's
replaces (README, "What only `roomchat serve` enforces"): that test runs under
``roomchat serve`` only.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode

from tests.conftest import PASSWORD, TEST_SECRET
from tests.rawclient import RawFloodingClient, masked_frame
from tests.serverprocess import ServerProcess
from tests.wsclient import open_socket, recv

#: Each traceback is 5 KB: more of them would fill the pipe the test reads only at the end.
ATTEMPTS = 10


@pytest.fixture(params=["roomchat-serve", "plain-uvicorn"])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """``roomchat serve`` and ``uvicorn roomchat.main:app``."""
    yield from serve(tmp_path, plain_uvicorn=request.param == "plain-uvicorn")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from serve(tmp_path, plain_uvicorn=False)


def serve(tmp_path: Path, *, plain_uvicorn: bool) -> Iterator[ServerProcess]:
    env = {
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
        "ROOMCHAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}",
        "ROOMCHAT_DATA_DIR": str(tmp_path / "data"),
        "ROOMCHAT_LOG_LEVEL": "info",
    }
    process = ServerProcess(env, cwd=tmp_path, plain_uvicorn=plain_uvicorn)
    process.wait_ready()
    yield process
    process.stop()


async def token_for(server: ServerProcess, username: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as client:
        body = {"username": username, "password": PASSWORD}
        assert (await client.post("/api/auth/register", json=body)).status_code == 201
        token: str = (await client.post("/api/auth/token", data=body)).json()["access_token"]
        return token


async def test_a_refused_handshake_logs_no_error(server: ServerProcess) -> None:
    token = await token_for(server, "alice")
    refusals = [
        f"{server.ws_url}/ws/lobby?token=forged",
        f"{server.ws_url}/ws/bad%20room?token={token}",
        f"{server.ws_url}/ws/lobby",
    ]
    for url in refusals:
        with pytest.raises(InvalidStatus):
            await open_socket(url)
    output = server.stop()
    assert output.count("handshake refused") == len(refusals)  # the app's own line
    assert "without completing handshake" not in output
    assert "level=error" not in output


def connect_then_reset(port: int, token: str) -> None:
    """Open a socket, then drop the connection as soon as the server accepts it (a reset,
    as a client that crashed or lost its network would), before its history comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            f"GET /ws/lobby?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            data = client.recv(4096)
            assert data, "the server closed the connection instead of accepting"
            response += data
        assert response.startswith(b"HTTP/1.1 101")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_client_that_drops_right_after_connecting_leaves_no_traceback(
    any_server: ServerProcess,
) -> None:
    server = any_server
    token = await token_for(server, "bob")
    for _ in range(ATTEMPTS):
        await asyncio.to_thread(connect_then_reset, server.port, token)
    # The server still serves a socket after them all, with its history first.
    async with await open_socket(f"{server.ws_url}/ws/lobby?token={token}") as ws:
        assert (await recv(ws))["type"] == "history"
    output = server.stop()
    assert "[accepted]" in output  # uvicorn's line for each socket: the log was read
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
    assert "level=error" not in output


async def test_a_text_frame_that_is_not_utf8_closes_the_socket_without_a_traceback(
    server: ServerProcess,
) -> None:
    token = await token_for(server, "carol")
    # Sent at once, the bad frame often closes the socket before its history goes out:
    # to the app, then, the client has left (no "unexpected ASGI message" traceback).
    for _ in range(ATTEMPTS):
        client = RawFloodingClient(f"{server.ws_url}/ws/lobby?token={token}")
        await client.open(server.port)
        await client.send_bytes(masked_frame(Opcode.TEXT, b"caf\xe9"))  # Latin-1, not UTF-8
        assert await client.read_close_frame() == 1007
        client.close_now()
    output = server.stop()
    assert "[accepted]" in output
    assert "Traceback" not in output
    assert "level=error" not in output
