"""Control frames count (API.md, version 2 limits): pings are answered only while the
client reads, so one that pings and never reads makes the server hold no more for it
than any socket's budget, and pings past the message rate count toward the abuse close.

Only under ``roomchat serve``'s protocol: plain uvicorn answers every ping into an
unbounded write buffer (README, "What only `roomchat serve` enforces").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psutil
import pytest
from websockets.frames import Opcode

from tests.conftest import live_token
from tests.live import LiveServer
from tests.probing import STALL_SECONDS, worst_probe_latency
from tests.rawclient import BIG_PING_FRAME, RawFloodingClient, masked_frame
from tests.wsclient import join, recv_type, room_url

#: Control frames are counted by the protocol, per connection: these run once.
pytestmark = pytest.mark.embedded_only

PINGS = 48 * 1024 * 1024  # bytes of pings the client tries to send
#: What the server may hold for it: the socket's budget and the kernel's buffers, with
#: room to spare. Without the limit its pongs alone (as many bytes as the pings) stay.
MAX_RSS_GROWTH = 16 * 1024 * 1024


async def test_a_client_that_pings_and_never_reads_costs_bounded_memory(
    live_server: Callable[..., LiveServer],
) -> None:
    # Pings past the message rate would close it as abusive (the next test): here the
    # rate is out of the way, so that only the answering-while-reading is tested.
    server = live_server(
        send_buffer_bytes=16_384, messages_per_second=1_000_000, message_burst=1_000_000
    )
    pinger = RawFloodingClient(room_url(server.ws_url, "lobby", await live_token(server, "pinger")))
    await pinger.open(server.port)
    friend, _, _ = await join(server, "lobby", await live_token(server, "friend"))
    process = psutil.Process()
    rss_before = process.memory_info().rss

    flood = asyncio.ensure_future(
        pinger.flood(BIG_PING_FRAME * 500, limit=PINGS, seconds=30, until_stalled=True)
    )
    worst = await worst_probe_latency(server, until=flood)
    result = flood.result()
    growth = process.memory_info().rss - rss_before

    assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.0f} MiB"
    # The server stopped reading it (or let it go) long before it sent everything.
    assert result.stalled or result.broken_after is not None
    assert result.sent < PINGS
    assert worst < STALL_SECONDS, f"/healthz took {worst:.2f} s during the flood"
    # The others chat on.
    await friend.send("still here")
    assert (await recv_type(friend, "message"))["text"] == "still here"
    await friend.close()
    pinger.close_now()


async def test_pings_past_the_message_rate_close_the_socket_as_abusive(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()  # 5 a second, 20 at once
    pinger = RawFloodingClient(room_url(server.ws_url, "lobby", await live_token(server, "pinger")))
    await pinger.open(server.port)
    friend, _, _ = await join(server, "lobby", await live_token(server, "friend"))
    await pinger.send_bytes(masked_frame(Opcode.PING, b"are you there?") * 100)
    assert await pinger.read_close_frame() == 1008
    leave = await recv_type(friend, "leave")
    assert leave["user"] == "pinger"
    await friend.close()
    pinger.close_now()


async def test_pongs_to_the_servers_own_pings_do_not_count(
    live_server: Callable[..., LiveServer],
) -> None:
    # The server pings every 50 ms: 80 pongs in 4 s, far past the 5-a-second rate. A pong
    # not taken as the answer would stop its pings and close the socket a second later.
    server = live_server(uvicorn_options={"ws_ping_interval": 0.05, "ws_ping_timeout": 1})
    ws, _, _ = await join(server, "lobby", await live_token(server, "alice"))
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < 4:
        sent += 1
        await ws.send(f"still here {sent}")
        assert (await recv_type(ws, "message"))["text"] == f"still here {sent}"
        await asyncio.sleep(0.5)  # the time for the pings to come, not a synchronisation
    await ws.close()
