"""Login brute force: failures per username and per address get 429 with Retry-After."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from roomchat.main import create_app
from roomchat.throttle import LoginThrottle
from tests.conftest import PASSWORD, make_settings, register


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_throttle_counts_per_user_and_per_address_and_refills(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(
        tmp_path, login_failures_per_user=3, login_failures_per_address=5, login_window_seconds=60
    )
    throttle = LoginThrottle(settings, clock=clock)
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


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": "alice", "password": password})


async def test_repeated_failures_get_429_and_the_right_password_works_after_the_window(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, login_failures_per_user=3, login_window_seconds=1.5)
    app = create_app(settings)
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
            await asyncio.sleep(retry_after)  # what a well-behaved client does: honour it
            assert (await login(client, PASSWORD)).status_code == 200


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
