"""Login brute force: failures per username and per address get 429 with Retry-After.

Every attempt is counted before its password is checked, so concurrent guesses are
throttled like sequential ones. Time is the throttle's injected clock, moved by the
tests, never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from roomchat.accounts import security
from roomchat.limits.backend import Limiters
from roomchat.limits.throttle import LoginThrottle
from roomchat.main import create_app
from tests.conftest import PASSWORD, live_token, make_settings, register
from tests.helpers import CountingContext, FakeClock
from tests.live import LiveServer

GUESSES = 200


async def test_throttle_counts_per_user_and_per_address_and_refills(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(
        tmp_path, login_failures_per_user=3, login_failures_per_address=5, login_window_seconds=60
    )
    throttle = LoginThrottle(settings, Limiters(settings, clock=clock))
    for _ in range(3):
        assert await throttle.retry_after(address="10.0.0.1", username="alice") == 0
        await throttle.failed(address="10.0.0.1", username="Alice")
    assert await throttle.retry_after(address="10.0.0.9", username="ALICE") == 20  # per user
    assert await throttle.retry_after(address="10.0.0.1", username="bob") == 0
    await throttle.failed(address="10.0.0.1", username="bob")
    await throttle.failed(address="10.0.0.1", username="carol")
    assert await throttle.retry_after(address="10.0.0.1", username="dave") == 12  # per address
    clock.now += 20
    assert await throttle.retry_after(address="10.0.0.9", username="alice") == 0


async def test_reserving_counts_first_and_a_refund_gives_it_back(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(
        tmp_path, login_failures_per_user=2, login_failures_per_address=3, login_window_seconds=60
    )
    throttle = LoginThrottle(settings, Limiters(settings, clock=clock))
    assert await throttle.reserve(address="10.0.0.1", username="alice") == 0
    assert await throttle.reserve(address="10.0.0.1", username="Alice") == 0
    # Two attempts in flight use up alice's two: a third waits, though none has failed yet.
    assert await throttle.reserve(address="10.0.0.1", username="ALICE") == 30
    await throttle.refund(address="10.0.0.1", username="alice")  # one was the right password
    assert await throttle.reserve(address="10.0.0.1", username="alice") == 0
    # A refusal for the user took nothing from the address: bob still has the third.
    assert await throttle.reserve(address="10.0.0.1", username="bob") == 0
    assert await throttle.reserve(address="10.0.0.1", username="carol") == 20  # the address
    clock.now += 30
    assert await throttle.reserve(address="10.0.0.2", username="alice") == 0


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": "alice", "password": password})


async def test_repeated_failures_get_429_and_the_right_password_works_after_the_window(
    tmp_path: Path, backend: dict[str, object]
) -> None:
    clock = FakeClock()
    settings = make_settings(
        tmp_path, login_failures_per_user=3, login_window_seconds=1.5, **backend
    )
    app = create_app(settings, clock=clock)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await register(client, "alice")
            assert [(await login(client, "wrong password")).status_code for _ in range(3)] == [
                401
            ] * 3
            throttled = await login(client, PASSWORD)  # even the right one, meanwhile
            assert throttled.status_code == 429
            retry_after = int(throttled.headers["retry-after"])
            assert retry_after == 1  # one attempt refills every 0.5 s, rounded up
            assert "detail" in throttled.json()
            clock.now += 0.25  # not yet
            assert (await login(client, PASSWORD)).status_code == 429
            clock.now += 0.25  # what a well-behaved client does: honour Retry-After
            assert (await login(client, PASSWORD)).status_code == 200
            # The right password gave its attempt back: the next wrong one still counts.
            assert (await login(client, "wrong password")).status_code == 401
            assert (await login(client, PASSWORD)).status_code == 429


async def test_concurrent_guesses_are_throttled_like_sequential_ones(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 wrong passwords at once for one user from one address: five are checked."""
    server = live_server(login_failures_per_user=5, login_window_seconds=3600)
    await live_token(server, "alice")
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)

    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(base_url=server.http_url, limits=limits, timeout=60) as client:
        body = {"username": "alice", "password": "wrong password"}
        guesses = await asyncio.gather(
            *(client.post("/api/auth/token", data=body) for _ in range(GUESSES))
        )
        statuses = sorted(response.status_code for response in guesses)
        assert statuses == [401] * 5 + [429] * (GUESSES - 5)
        assert counting.count("verify") == 5
        assert all(int(r.headers["retry-after"]) >= 1 for r in guesses if r.status_code == 429)
        right = await client.post(
            "/api/auth/token", data={"username": "alice", "password": PASSWORD}
        )
        assert right.status_code == 429  # the five failures stand
    assert counting.count("verify") == 5


async def test_an_unknown_users_login_costs_one_verify_like_a_known_one(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dummy hash: an unknown name pays what a wrong password does, so timing tells
    nothing about which names exist."""
    server = live_server()
    await live_token(server, "alice")
    counting = CountingContext(security._passwords)
    monkeypatch.setattr(security, "_passwords", counting)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        unknown = {"username": "nobody", "password": "wrong password"}
        assert (await client.post("/api/auth/token", data=unknown)).status_code == 401
        assert counting.order == ["verify"]
        known = {"username": "alice", "password": "wrong password"}
        assert (await client.post("/api/auth/token", data=known)).status_code == 401
        assert counting.order == ["verify", "verify"]


async def test_taken_names_at_registration_count_as_failures_for_the_address(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, login_failures_per_address=3)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await register(client, "alice")
            body = {"username": "alice", "password": PASSWORD}
            codes = [(await client.post("/api/auth/register", json=body)).status_code]
            codes += [(await client.post("/api/auth/register", json=body)).status_code]
            codes += [(await client.post("/api/auth/register", json=body)).status_code]
            assert codes == [409, 409, 409]
            probe = await client.post("/api/auth/register", json={**body, "username": "bob"})
            assert probe.status_code == 429
            assert int(probe.headers["retry-after"]) >= 1
