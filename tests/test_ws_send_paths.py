"""Both ways a socket's events go out: the frame sink of roomchat's own uvicorn protocol
(``roomchat serve``), and plain ASGI under any other server (here uvicorn's stock
websockets-sansio, as ``uvicorn roomchat.main:app`` runs it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from roomchat.realtime.sink import frame_sink, text_frame
from roomchat.server.transport_sink import TransportSink
from roomchat.server.ws_protocol import RoomchatWebSocketProtocol
from tests.conftest import live_token
from tests.live import SEND_PATHS, LiveServer
from tests.wsclient import join, open_socket, recv, recv_messages, recv_type, room_url


@pytest.mark.parametrize("options", SEND_PATHS)
async def test_history_replay_then_live_messages_in_order(
    live_server: Callable[..., LiveServer], options: dict[str, Any]
) -> None:
    server = live_server(messages_per_second=1000, message_burst=1000, uvicorn_options=options)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    talker, _, _ = await join(server, "lobby", alice)
    for n in range(3):
        await talker.send(f"before {n}")
    before = await recv_messages(talker, 3)

    # bob joins with since= the first message while alice posts 50 more: he gets the
    # other two and all 50, each once and in order, some in the replay, the rest live.
    listener = await open_socket(room_url(server.ws_url, "lobby", bob, since=before[0]["id"]))
    posting = asyncio.gather(*(talker.send(f"after {n}") for n in range(50)))
    replayed = (await recv(listener))["messages"]
    await posting
    received = replayed + await recv_messages(listener, 52 - len(replayed))
    expected = ["before 1", "before 2"] + [f"after {n}" for n in range(50)]
    assert [m["text"] for m in received] == expected
    ids = [m["id"] for m in received]
    assert ids == sorted(set(ids))
    await talker.send("{not json")  # an error frame takes the same path
    assert (await recv_type(talker, "error"))["code"] == "bad_json"
    await talker.close()
    await listener.close()


class FakeTransport:
    """Records what the protocol writes, and how many writes it took."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.writes.append(b"".join(data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


HANDSHAKE = (
    b"GET /ws/lobby HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"


async def serve_one(request: bytes, *, deflate: bool) -> tuple[TransportSink | None, FakeTransport]:
    """Run roomchat's protocol on one handshake; the app writes two frames in one turn."""
    found: asyncio.Future[TransportSink | None] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        sink = frame_sink(scope)
        if sink is not None:
            assert sink.write(text_frame("one"))
            assert sink.write(text_frame("two"))
        found.set_result(sink)  # wakes the test after the end-of-turn write, queued first
        await receive()  # until the test's end

    config = Config(app=app, ws=RoomchatWebSocketProtocol, ws_per_message_deflate=deflate)
    config.load()
    protocol = RoomchatWebSocketProtocol(config, ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request + b"\r\n")
    sink = await asyncio.wait_for(found, 5)
    protocol.connection_lost(None)
    return sink, transport


async def test_roomchats_protocol_writes_a_turns_frames_in_one_write() -> None:
    sink, transport = await serve_one(HANDSHAKE, deflate=False)
    assert sink is not None
    response, frames = transport.writes
    assert response.startswith(b"HTTP/1.1 101")
    assert frames == text_frame("one") + text_frame("two")  # one write for both


async def test_a_compressed_socket_gets_no_sink() -> None:
    sink, transport = await serve_one(HANDSHAKE + DEFLATE, deflate=True)
    assert sink is None
    assert b"permessage-deflate" in transport.writes[0]
