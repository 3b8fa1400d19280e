"""Once the server has sent its close frame it reads nothing more from that socket, and
a client that does not finish the close within 5 s is cut off (API.md, version 2 limits).

Only under ``roomchat serve``'s protocol: plain uvicorn goes on reading and parsing
whatever a closed socket sends until its own close timeout (README, "What only
`roomchat serve` enforces").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.frames import Opcode

from tests.conftest import live_token
from tests.live import LiveServer
from tests.probing import STALL_SECONDS, server_holds, worst_probe_latency
from tests.rawclient import EMPTY_TEXT_FRAME, RawFloodingClient, masked_frame
from tests.wsclient import open_socket, recv, recv_type, room_url

#: The protocol's 5 s abort timer knows no backend: these run once.
pytestmark = pytest.mark.embedded_only

CUT_OFF_SECONDS = 5.0  # API.md: "a client that does not finish the close within 5 s"
#: Time for the cut-off to happen on a loaded machine, beyond the 5 s it is due after.
MARGIN_SECONDS = 2.0
FLOOD = EMPTY_TEXT_FRAME * 10_000  # 60 KB of the smallest frames there are


async def test_a_socket_closed_for_abuse_is_read_no_more_and_cut_off_after_5_s(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    spammer = RawFloodingClient(room_url(server.ws_url, "lobby", await live_token(server, "spam")))
    await spammer.open(server.port)
    # 100 messages at once, far past the burst: the server closes the socket as abusive.
    await spammer.send_bytes(masked_frame(Opcode.TEXT, b"spam") * 100)
    assert await spammer.read_close_frame() == 1008
    # It never answers the close; it floods the smallest frames instead, never reading.
    flood = asyncio.ensure_future(spammer.flood(FLOOD, limit=10**12, seconds=20))
    worst = await worst_probe_latency(server, until=flood)
    result = flood.result()
    assert result.broken_after is not None, "the server never cut the connection off"
    assert result.broken_after < CUT_OFF_SECONDS + MARGIN_SECONDS
    assert result.stalled  # the server stopped reading long before it cut it off
    assert worst < STALL_SECONDS, f"/healthz took {worst:.2f} s during the flood"
    assert not server_holds(server, spammer.port)
    spammer.close_now()


async def test_a_socket_dropped_as_too_slow_that_floods_is_cut_off_after_5_s(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(
        send_queue_bytes=48_000,
        messages_per_second=10_000,
        message_burst=10_000,
        send_buffer_bytes=16_384,
    )
    stuck = RawFloodingClient(room_url(server.ws_url, "lobby", await live_token(server, "stuck")))
    await stuck.open(server.port)
    talker = await open_socket(
        room_url(server.ws_url, "lobby", await live_token(server, "talker")), max_queue=None
    )
    await recv_type(talker, "presence")
    while True:  # the stuck member reads nothing, so its outbox overflows: 1013
        await talker.send("z" * 3000)
        frame = await recv(talker, timeout=5)
        if frame["type"] == "leave" and frame["user"] == "stuck":
            break
    # Still reading nothing, it floods the smallest frames instead of answering.
    flood = asyncio.ensure_future(stuck.flood(FLOOD, limit=10**12, seconds=40))
    worst = await worst_probe_latency(server, until=flood)
    result = flood.result()
    assert result.broken_after is not None, "the server never cut the connection off"
    # (the flood began right after the drop: its time is the time since the close)
    assert result.broken_after < CUT_OFF_SECONDS + MARGIN_SECONDS
    assert worst < STALL_SECONDS, f"/healthz took {worst:.2f} s during the flood"
    await talker.close()
    stuck.close_now()
