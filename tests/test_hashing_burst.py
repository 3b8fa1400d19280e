"""A burst of logins cannot exhaust memory or CPU: argon2 runs a bounded few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from roomchat.accounts import security
from tests.conftest import PASSWORD
from tests.helpers import CountingContext
from tests.live import LiveServer
from tests.wsclient import new_member, recv_type

#: The hashing pool is one process's: this runs once.
pytestmark = pytest.mark.embedded_only

BURST = 200


async def test_a_burst_of_logins_stays_bounded_and_the_server_keeps_serving(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)
    # One user logging in 200 times at once: the throttle counts attempts in flight too,
    # so it is opened wide here; this test is about the pool.
    server = live_server(
        password_hash_concurrency=2,
        login_failures_per_user=BURST,
        login_failures_per_address=BURST,
    )
    ws = (await new_member(server, "alice")).ws
    # From here on, only the burst's logins are counted (not alice's registration, nor
    # her login above); a quarter of them started wakes the test, from the hash thread.
    before = counting.count("verify")
    loop, quarter_done = asyncio.get_running_loop(), asyncio.Event()

    def started(method: str) -> None:
        if method == "verify" and counting.count("verify") - before >= BURST // 4:
            loop.call_soon_threadsafe(quarter_done.set)

    counting.started = started  # type: ignore[method-assign]

    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(base_url=server.http_url, limits=limits, timeout=120) as client:
        body = {"username": "alice", "password": PASSWORD}
        burst = [
            asyncio.create_task(client.post("/api/auth/token", data=body)) for _ in range(BURST)
        ]
        # While the burst is being worked through, the server still answers and chats.
        await asyncio.wait_for(quarter_done.wait(), 30)
        assert (await asyncio.wait_for(client.get("/healthz"), 5)).status_code == 200
        await ws.send("still chatting during the burst")
        assert (await recv_type(ws, "message", timeout=5))["text"].startswith("still chatting")
        assert not all(task.done() for task in burst), "the burst was over too soon to tell"
        responses = await asyncio.gather(*burst)

    assert [r.status_code for r in responses] == [200] * BURST
    assert counting.most <= 2
    assert counting.count("verify") - before == BURST
    await ws.close()
