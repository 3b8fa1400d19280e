"""Registration: ROOMCHAT_REGISTRATIONS_PER_ADDRESS an hour, counted before the hash, and
a flood of registrations never holds up a login in the hash pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from roomchat import security
from tests import services
from tests.conftest import PASSWORD, live_token, make_settings
from tests.live import LiveServer
from tests.test_hashing_burst import CountingContext
from tests.test_login_throttle import FakeClock

AT_ONCE = 20


async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post("/api/auth/register", json={"username": name, "password": PASSWORD})


async def test_registrations_per_address_are_counted_before_hashing(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty at once from one address: five accounts, five hashes, fifteen 429s."""
    clock = FakeClock()
    server = live_server(registrations_per_address=5, clock=clock)
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)
    limits = httpx.Limits(max_connections=AT_ONCE)
    async with httpx.AsyncClient(base_url=server.http_url, limits=limits, timeout=60) as client:
        answers = await asyncio.gather(*(register(client, f"user{i}") for i in range(AT_ONCE)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] * 5 + [429] * (AT_ONCE - 5)
        assert counting.count("hash") == 5
        refused = [answer for answer in answers if answer.status_code == 429]
        # Five an hour: one comes back every 12 minutes.
        assert {int(answer.headers["retry-after"]) for answer in refused} == {720}
        assert all("registrations" in answer.json()["detail"] for answer in refused)

        clock.now += 719
        assert (await register(client, "late")).status_code == 429
        clock.now += 1
        assert (await register(client, "late")).status_code == 201
        assert (await register(client, "later")).status_code == 429
    assert counting.count("hash") == 6


async def test_a_login_goes_ahead_of_queued_registrations(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one hashing thread and a queue of registrations, a login's verify is the next
    to run, not the last: the pool's own order of work says so."""
    server = live_server(password_hash_concurrency=1)
    await live_token(server, "victim")
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)
    flood = 30
    limits = httpx.Limits(max_connections=flood + 1)
    async with httpx.AsyncClient(base_url=server.http_url, limits=limits, timeout=120) as client:
        registrations = [asyncio.create_task(register(client, f"flood{i}")) for i in range(flood)]
        # Wait until the pool is busy with the flood and has most of it queued.
        async with asyncio.timeout(30):
            while counting.count("hash") < 1:
                await asyncio.wait(registrations, timeout=0.01)
        login = await client.post(
            "/api/auth/token", data={"username": "victim", "password": PASSWORD}
        )
        assert login.status_code == 200
        registered_meanwhile = sum(task.done() for task in registrations)
        # At most the hash running when the login came, and one starting as it arrived.
        assert counting.order.index("verify") <= 3, counting.order
        assert registered_meanwhile < flood, "the flood was over too soon to tell"
        assert all(r.status_code == 201 for r in await asyncio.gather(*registrations))
    assert counting.order.count("hash") == flood


async def test_registrations_count_across_workers(
    tmp_path: Path, redis_prefix: str, postgres_url: str
) -> None:
    """Two workers on one Redis: one limit for the address, wherever it registers."""
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=services.REDIS_URL,
        redis_prefix=redis_prefix,
        registrations_per_address=5,
    )
    a, b = LiveServer(settings), LiveServer(settings)
    a.start()
    b.start()
    try:
        codes = []
        async with httpx.AsyncClient() as client:
            for i, server in enumerate([a, b] * 3):
                response = await client.post(
                    f"{server.http_url}/api/auth/register",
                    json={"username": f"user{i}", "password": PASSWORD},
                )
                codes.append(response.status_code)
        assert codes == [201] * 5 + [429]
    finally:
        a.stop()
        b.stop()
