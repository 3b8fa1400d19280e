"""Registration: ROOMCHAT_REGISTRATIONS_PER_ADDRESS an hour, counted before the hash, and
a flood of registrations never holds up a login in the hash pool."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from roomchat.accounts import security
from tests.conftest import PASSWORD, live_token
from tests.helpers import CountingContext, FakeClock
from tests.live import LiveServer

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
    """With one hashing thread and a queue of registrations, a login's verify runs among
    the next few, not last: the pool's own order of work says so."""
    server = live_server(password_hash_concurrency=1)
    await live_token(server, "victim")
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)
    flood = 40
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
        # First come, first served, it would be the 41st. Ahead of the queue, it waits for
        # the hash running when it came and those that started while its request was on
        # its way to the pool (parsed, its user looked up): a few, on a loaded machine.
        assert counting.order.index("verify") <= flood // 4, counting.order
        assert registered_meanwhile < flood, "the flood was over too soon to tell"
        assert all(r.status_code == 201 for r in await asyncio.gather(*registrations))
    assert counting.order.count("hash") == flood


class GatedContext(CountingContext):
    """Each ``hash`` (a registration) waits for a permit from the test."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.permits = threading.Semaphore(0)
        self.waiting = threading.Event()  # a registration holds the thread

    def started(self, method: str) -> None:
        if method == "hash":
            self.waiting.set()
            if not self.permits.acquire(timeout=30):
                raise TimeoutError("no permit")


async def test_the_pool_runs_a_waiting_login_before_waiting_registrations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool on its own, step by step: with every registration queued behind a running
    one, a login that comes last is the next to run."""
    known = await asyncio.to_thread(security._passwords.hash, PASSWORD)
    hasher = security.PasswordHasher(concurrency=1)
    gated = GatedContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", gated)
    try:
        registrations = [asyncio.create_task(hasher.hash(f"password {i}")) for i in range(5)]
        await asyncio.sleep(0)  # one loop turn: each task has run up to its place in line
        assert await asyncio.to_thread(gated.waiting.wait, 10)
        login = asyncio.create_task(hasher.verify(PASSWORD, known))
        await asyncio.sleep(0)  # and the login has taken its place in line
        for _ in registrations:
            gated.permits.release()
        assert await asyncio.wait_for(login, 30) is True
        await asyncio.wait_for(asyncio.gather(*registrations), 30)
    finally:
        hasher.close()
    assert gated.order == ["hash", "verify", "hash", "hash", "hash", "hash"]


async def test_registrations_count_across_workers(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]], postgres_url: str
) -> None:
    """Two workers on one Redis: one limit for the address, wherever it registers."""
    a, b = two_workers(database_url=postgres_url, registrations_per_address=5)
    codes = []
    async with httpx.AsyncClient() as client:
        for i, server in enumerate([a, b] * 3):
            response = await client.post(
                f"{server.http_url}/api/auth/register",
                json={"username": f"user{i}", "password": PASSWORD},
            )
            codes.append(response.status_code)
    assert codes == [201] * 5 + [429]
