"""A real ``websockets`` client for socket tests: every wait has a timeout."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import live_token

if TYPE_CHECKING:
    from tests.live import LiveServer

TIMEOUT = 10.0


def room_url(base: str, room: str, token: str | None, since: int | None = None) -> str:
    url = f"{base}/ws/{room}"
    params = ([f"token={token}"] if token is not None else []) + (
        [f"since={since}"] if since is not None else []
    )
    return url + ("?" + "&".join(params) if params else "")


async def open_socket(url: str, **options: Any) -> ClientConnection:
    return await asyncio.wait_for(connect(url, open_timeout=TIMEOUT, **options), TIMEOUT)


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def recv_type(ws: ClientConnection, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping others (presence changes, typing…)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv(ws, timeout)
            if frame["type"] == kind:
                return frame


async def recv_messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await recv_type(ws, "message") for _ in range(count)]


async def wait_closed(ws: ClientConnection, timeout: float = TIMEOUT) -> int | None:
    """Read (and drop) frames until the server closes; return the close code."""
    code, _ = await wait_close_frame(ws, timeout)
    return code


async def wait_close_frame(
    ws: ClientConnection, timeout: float = TIMEOUT
) -> tuple[int | None, str]:
    """Read (and drop) frames until the server closes; return its close code and reason."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")


async def join(
    server: LiveServer, room: str, token: str, since: int | None = None
) -> tuple[ClientConnection, dict[str, Any], dict[str, Any]]:
    """Open a socket; return it with its history and presence frames."""
    ws = await open_socket(room_url(server.ws_url, room, token, since))
    history, presence = await recv(ws), await recv(ws)
    assert (history["type"], history["room"]) == ("history", room)
    assert (presence["type"], presence["room"]) == ("presence", room)
    return ws, history, presence


class Member(NamedTuple):
    """A user in a room: their open socket, the presence frame it got, and their token."""

    ws: ClientConnection
    presence: dict[str, Any]
    token: str


async def new_member(server: LiveServer, username: str, room: str = "lobby") -> Member:
    """Register ``username``, log in and join ``room``; return once presence has come."""
    token = await live_token(server, username)
    ws, _, presence = await join(server, room, token)
    return Member(ws, presence, token)


async def refused_status(url: str, **options: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(url, **options)
    return refused.value.response.status_code
