"""Junk frames count as abuse: past the rate a socket is closed, and no error echoes much."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from roomchat.realtime.strikes import TYPING_FRAMES_BURST
from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, recv_type, room_url, wait_close_frame

#: Enough frames to run any strike budget of these tests dry many times over.
FLOOD = 300
TYPING = '{"type": "typing"}'
#: Typing frames: the tolerated burst, the strikes' burst (5 here), and a few more; fewer
#: than the server still reads after its close frame, so the client's close is seen.
TYPING_FLOOD = TYPING_FRAMES_BURST + 2 + 5 + 8


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("{not json", id="malformed"),
        pytest.param('{"type": "dance"}', id="unknown-type"),
        pytest.param('{"type": "message", "text": "   "}', id="blank-text"),
        pytest.param('{"type": "message", "text": "hi", "extra": 1}', id="unknown-field"),
        pytest.param(b"\x00\x01", id="binary"),
        pytest.param(TYPING, id="typing"),
    ],
)
async def test_a_flood_of_frames_that_store_nothing_is_closed_as_abuse(
    live_server: Callable[..., LiveServer], frame: str | bytes
) -> None:
    server = live_server(messages_per_second=1, message_burst=5)
    token = await live_token(server, "alice")
    ws = await open_socket(room_url(server.ws_url, "lobby", token), max_queue=None)
    await recv_type(ws, "presence")
    # Each bad frame is answered with an error, so the flood waits for it: it then stops
    # at the close, which the client answers at once. (A flood that went on past the
    # close would be cut off 5 s later instead: that is test_ws_closing's business.)
    # Typing is not answered; its flood is just long enough to run the budget dry.
    answered = frame != TYPING
    try:
        for _ in range(FLOOD if answered else TYPING_FLOOD):
            await ws.send(frame)
            if answered:
                await recv_type(ws, "error")
    except ConnectionClosed:
        pass  # closed before the flood was over: what this test wants
    assert await wait_close_frame(ws) == (1008, "too many messages: slow down")


async def test_a_few_bad_frames_and_typing_at_typing_speed_are_not_abuse(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=1, message_burst=5)
    token = await live_token(server, "alice")
    ws = await open_socket(room_url(server.ws_url, "lobby", token))
    await recv_type(ws, "join")
    for _ in range(4):  # within the burst
        await ws.send("{oops")
        assert (await recv(ws))["code"] == "bad_json"
    for _ in range(15):  # one frame a keystroke
        await ws.send('{"type": "typing"}')
    await ws.send("still welcome")
    assert (await recv_type(ws, "message"))["text"] == "still welcome"
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(json.dumps({"type": "x" * 60_000}), id="type"),
        pytest.param(json.dumps({"type": "message", "text": "hi", "k" * 60_000: 1}), id="field"),
        pytest.param(json.dumps({"type": "typing", **dict.fromkeys(range(5000), 1)}), id="fields"),
    ],
)
async def test_an_error_frame_echoes_only_a_short_excerpt(live: LiveServer, frame: str) -> None:
    token = await live_token(live, "alice")
    ws = await open_socket(room_url(live.ws_url, "lobby", token))
    await recv_type(ws, "join")
    await ws.send(frame)
    raw = await ws.recv()
    error = json.loads(raw)
    assert error["type"] == "error"
    assert error["code"] in ("unknown_type", "unknown_field")
    assert len(raw) < 300, raw[:300]
    await ws.close()


async def test_reconnecting_does_not_refill_the_strikes(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(messages_per_second=0.01, message_burst=5)
    token = await live_token(server, "alice")
    url = room_url(server.ws_url, "lobby", token)
    ws = await open_socket(url, max_queue=None)
    await recv_type(ws, "presence")
    for _ in range(6):
        await ws.send("{junk")
    assert await wait_close_frame(ws) == (1008, "too many messages: slow down")
    again = await open_socket(url, max_queue=None)
    await recv_type(again, "presence")
    await again.send("{junk")  # the user's strikes are spent: at once
    assert await wait_close_frame(again) == (1008, "too many messages: slow down")
