"""A late burst is not abuse: time the server did not read a socket is not the client's fault.

While the server does not read a socket (its whole process stopped, or its reader held
back by posts waiting to be stored), what the client sends meanwhile waits in the socket
and arrives at once. A client that kept to the rate through that is served in full: no
``rate_limited``, no close, every frame stored and echoed. A flood is still refused and
closed, stall or not (test_ws_abuse.py and test_ws_rooms.py: a burst from a client that
was merely silent), and its close comes only once its posts in flight are stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.frames import Opcode

from roomchat.realtime.session import MAX_POSTS_IN_FLIGHT
from tests import services
from tests.conftest import TEST_REGISTRATIONS_PER_ADDRESS
from tests.helpers import TEST_SECRET, live_token, login, register
from tests.live import LiveServer
from tests.rawclient import RawFloodingClient, masked_frame
from tests.serverprocess import ServerProcess
from tests.storegate import StoreGate
from tests.waiting import eventually
from tests.wsclient import TIMEOUT, join, open_socket, recv, recv_type, room_url, wait_close_frame

RATE = 20.0  # messages a second
BURST = 3
#: Messages the paced client sends while the server is stopped: at half the rate, that
#: is a 2 s stall, and several times the burst arrives at once when it resumes.
DURING_STALL = 20
FLOOD_FRAMES = 400


class Paced:
    """Sends ``texts`` at half the rate, and collects what comes back to it."""

    def __init__(self, ws: ClientConnection, texts: list[str], rate: float) -> None:
        self.ws, self.texts, self._gap = ws, texts, 2 / rate
        self.sent = 0
        self.echoed: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self._progress = asyncio.Event()

    async def send_all(self) -> None:
        for text in self.texts:
            await self.ws.send(text)
            self.sent += 1
            self._progress.set()
            await asyncio.sleep(self._gap)  # the client's own pace

    async def until_sent(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.sent < count:
                self._progress.clear()
                await self._progress.wait()

    async def read_answers(self, count: int) -> None:
        """Read until ``count`` of its frames are answered: echoed, or refused."""
        async with asyncio.timeout(TIMEOUT + len(self.texts) * self._gap):
            while len(self.echoed) + len(self.errors) < count:
                frame = await recv(self.ws, timeout=TIMEOUT + len(self.texts) * self._gap)
                if frame["type"] == "message":
                    self.echoed.append(frame["text"])
                elif frame["type"] == "error":
                    self.errors.append(frame)


@pytest.fixture
def server_process(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[ServerProcess]:
    """``roomchat serve`` on PostgreSQL and Redis (as the issue ran it), at RATE and BURST;
    a process of its own, to stop and resume. (The embedded backend's reader is the same
    code: the back-pressure test below runs on both.)"""
    env = {
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
        "ROOMCHAT_DATABASE_URL": postgres_url,
        "ROOMCHAT_REDIS_URL": services.REDIS_URL,
        "ROOMCHAT_REDIS_PREFIX": redis_prefix,
        "ROOMCHAT_DATA_DIR": str(tmp_path / "data"),
        "ROOMCHAT_MESSAGES_PER_SECOND": str(RATE),
        "ROOMCHAT_MESSAGE_BURST": str(BURST),
        "ROOMCHAT_REGISTRATIONS_PER_ADDRESS": str(TEST_REGISTRATIONS_PER_ADDRESS),
    }
    process = ServerProcess(env, cwd=tmp_path)
    try:
        process.wait_ready()
        yield process
    finally:
        process.resume()  # never leave it stopped, whatever failed
        process.stop()


async def test_after_a_stall_a_client_that_kept_to_the_rate_is_served_in_full(
    server_process: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server_process.url) as client:
        tokens = {}
        for name in ("alice", "mallory"):
            await register(client, name)
            tokens[name] = await login(client, name)
    ws = await open_socket(room_url(server_process.ws_url, "lobby", tokens["alice"]))
    assert [(await recv(ws))["type"] for _ in range(3)] == ["history", "presence", "join"]
    flooder = RawFloodingClient(room_url(server_process.ws_url, "flood", tokens["mallory"]))
    await flooder.open(server_process.port)

    texts = [f"m{n}" for n in range(3 + DURING_STALL + 3)]
    paced = Paced(ws, texts, RATE)
    sending = asyncio.create_task(paced.send_all())
    try:
        await paced.read_answers(3)  # the server reads it, at the client's pace
        server_process.pause()
        stopped_at, at_stop = time.monotonic(), paced.sent
        # While the server is stopped: the paced client goes on, and another floods.
        await flooder.send_bytes(masked_frame(Opcode.TEXT, b"flood") * FLOOD_FRAMES)
        await paced.until_sent(at_stop + DURING_STALL)
        server_process.resume()
        stall = time.monotonic() - stopped_at
        await sending
        await paced.read_answers(len(texts))
    finally:
        sending.cancel()
        server_process.resume()

    assert paced.errors == []
    assert paced.echoed == texts  # every frame stored, in order, and the socket open
    await ws.send("still open")
    await paced.read_answers(len(texts) + 1)
    assert paced.echoed[-1] == "still open"
    await ws.close()

    # The flood that arrived with the late burst is still refused, then closed: it got
    # at most the rate's worth of the stall beyond the burst.
    assert await flooder.read_close_frame() == 1008
    flooder.close_now()
    stored = await _texts(server_process.url, tokens["mallory"], "flood")
    assert set(stored) == {"flood"}
    assert BURST <= len(stored) <= BURST + RATE * (stall + 0.5)


async def _texts(base_url: str, token: str, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(
            f"/api/rooms/{room}/messages",
            params={"limit": 200},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()["messages"]]


#: Messages the client sends while the server reads it no further (posts in flight at
#: their limit): at half the rate, 0.6 s, and three times the burst.
HELD_BACK = 30


async def test_a_client_held_back_by_its_posts_in_flight_is_not_refused_for_it(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StoreGate(monkeypatch)
    rate = 100.0
    server = live_server(messages_per_second=rate, message_burst=10)
    ws, _, _ = await join(server, "lobby", await live_token(server, "alice"))
    texts = [f"m{n}" for n in range(MAX_POSTS_IN_FLIGHT + HELD_BACK)]
    paced = Paced(ws, texts, rate)
    sending = asyncio.create_task(paced.send_all())
    try:
        await eventually(lambda: len(gate.submitted) >= MAX_POSTS_IN_FLIGHT)  # reading stops
        await paced.until_sent(len(texts))  # the rest wait in the socket
        assert len(gate.submitted) == MAX_POSTS_IN_FLIGHT
    finally:
        gate.open()
        await sending
    await paced.read_answers(len(texts))
    assert paced.errors == []
    assert paced.echoed == texts
    await ws.close()


async def test_an_abuse_close_comes_once_the_posts_in_flight_are_stored(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a message the client sent that is not in the room's history after the close was
    not stored, and may be sent again (README)."""
    gate = StoreGate(monkeypatch)
    server = live_server(messages_per_second=1, message_burst=5)
    token = await live_token(server, "alice")
    ws, _, _ = await join(server, "lobby", token)
    texts = ["m0", "m1", "m2"]
    for text in texts:
        await ws.send(text)
    await eventually(lambda: len(gate.submitted) == len(texts))  # in flight: the store is held
    for _ in range(5 + 5):  # junk: the strikes' burst, answered, then the abusive ones
        await ws.send("{junk")
    for _ in range(5):
        await recv_type(ws, "error")
    closing = asyncio.create_task(wait_close_frame(ws))
    try:
        done, _ = await asyncio.wait([closing], timeout=1.0)
        assert not done, "closed with posts still being stored"
    finally:
        gate.open()
    assert await closing == (1008, "too many messages: slow down")
    closed_at = time.monotonic()
    assert gate.stored_at is not None
    assert gate.stored_at < closed_at
    assert await _texts(server.http_url, token, "lobby") == texts
