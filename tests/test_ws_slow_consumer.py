"""A member that never reads cannot hold up the room: it is closed with 1013."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil
import pytest

from roomchat.realtime import session
from tests.conftest import live_token
from tests.live import SEND_PATHS, LiveServer
from tests.rawclient import RawClient
from tests.waiting import eventually
from tests.wsclient import join, open_socket, recv, recv_type, room_url

HELD_AFTER_DROP_SECONDS = 2.0
TEXT = "z" * 3000


@pytest.mark.parametrize("options", SEND_PATHS)
async def test_a_member_that_never_reads_is_dropped_and_the_room_keeps_flowing(
    live_server: Callable[..., LiveServer], options: dict[str, Any]
) -> None:
    # Small socket buffers on both ends, so a reader that stops shows up within a few
    # hundred KiB instead of the many MiB that loopback buffers can hold.
    server = live_server(
        send_queue_bytes=48_000,  # 16 of its 3,000-character messages
        messages_per_second=10_000,
        message_burst=10_000,
        send_buffer_bytes=16_384,
        uvicorn_options=options,
        presence_linger_seconds=0,  # the drop shows as the stuck member's leave, at once
    )
    talker_token = await live_token(server, "talker")
    stuck_token = await live_token(server, "stuck")
    friend_token = await live_token(server, "friend")

    stuck = RawClient(room_url(server.ws_url, "lobby", stuck_token))
    await stuck.open(server.port)
    talker = await open_socket(room_url(server.ws_url, "lobby", talker_token), max_queue=None)
    friend, _, _ = await join(server, "lobby", friend_token)

    stuck_left = False
    sent = 0
    while not stuck_left and sent < 2000:
        await talker.send(TEXT)
        sent += 1
        # The friend keeps up: each message reaches it within a bounded time.
        while True:
            frame = await recv(friend, timeout=5)
            if frame["type"] == "leave" and frame["user"] == "stuck":
                stuck_left = True
            if frame["type"] == "message":
                assert frame["text"] == TEXT
                break
    assert stuck_left, f"the stuck member was never dropped after {sent} messages"
    # The room still flows for the others after the drop.
    await talker.send("after the drop")
    assert (await recv_type(friend, "message"))["text"] == "after the drop"
    # Once the stuck client reads again, it finds the server closed it with 1013.
    assert await stuck.close_code() == 1013
    await talker.close()
    await friend.close()


async def test_a_dropped_member_that_never_reads_again_is_let_go(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a deadline the server would keep the connection (and the bytes buffered
    # for it) for as long as the client stays silent.
    # Shorter than the real 5 s, yet long enough that the check right after the drop
    # sees the connection still held on a loaded machine.
    monkeypatch.setattr(session, "CLOSE_TIMEOUT_SECONDS", HELD_AFTER_DROP_SECONDS)
    server = live_server(
        send_queue_bytes=48_000,
        messages_per_second=10_000,
        message_burst=10_000,
        send_buffer_bytes=16_384,
        presence_linger_seconds=0,  # the drop shows as the stuck member's leave, at once
    )
    stuck = RawClient(room_url(server.ws_url, "lobby", await live_token(server, "stuck")))
    await stuck.open(server.port)
    talker = await open_socket(
        room_url(server.ws_url, "lobby", await live_token(server, "talker")), max_queue=None
    )
    await recv_type(talker, "presence")
    while True:
        await talker.send(TEXT)
        frame = await recv(talker, timeout=5)
        if frame["type"] == "leave" and frame["user"] == "stuck":
            break

    def server_holds_it() -> bool:
        return any(
            c.laddr and c.raddr and c.laddr.port == server.port and c.raddr.port == stuck.port
            for c in psutil.Process().net_connections("tcp")
        )

    assert server_holds_it()  # right after the drop it is still there: the close is pending
    await eventually(lambda: not server_holds_it())
    # Reading again, it gets what was already on its way, then the end of the connection
    # (the close frame never made it out of the server).
    assert await stuck.close_code() is None
    await talker.close()
