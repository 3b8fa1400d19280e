"""Both ways a socket's events go out: the frame sink of roomchat's own uvicorn protocol
(``roomchat serve``), and plain ASGI under any other server (here uvicorn's stock
websockets-sansio, as ``uvicorn roomchat.main:app`` runs it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from roomchat.realtime.uvicorn_protocol import FrameSink, frame_sink
from tests.conftest import live_token
from tests.live import SEND_PATHS, LiveServer
from tests.test_ws_rooms import join
from tests.wsclient import open_socket, recv, recv_messages, recv_type, room_url


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


def test_the_sink_is_offered_only_by_roomchats_protocol() -> None:
    assert frame_sink({"type": "websocket", "extensions": {"websocket.http.response": {}}}) is None
    sink = object.__new__(FrameSink)
    scope = {"type": "websocket", "extensions": {"roomchat.frames": {"sink": sink}}}
    assert frame_sink(scope) is sink
