"""With Redis, rate limits and login throttling count across every worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from roomchat.limits.redis_buckets import RedisRateLimiter
from roomchat.ops.redis import redis_client
from tests import services
from tests.conftest import PASSWORD, register
from tests.live import LiveServer


@pytest.fixture
async def clients(redis_prefix: str) -> AsyncIterator[tuple[Redis, Redis]]:
    one, two = redis_client(services.REDIS_URL), redis_client(services.REDIS_URL)
    yield one, two
    await one.aclose()
    await two.aclose()


async def test_two_workers_share_one_bucket(
    clients: tuple[Redis, Redis], redis_prefix: str
) -> None:
    one, two = (
        RedisRateLimiter(client, prefix=redis_prefix, name="t", rate=0.5, burst=3)
        for client in clients
    )
    assert [await one.allow("alice"), await two.allow("alice"), await one.allow("alice")] == [
        True
    ] * 3
    assert await two.allow("alice") is False
    assert await one.allow("bob") is True  # per key
    assert 0 < await two.retry_after("alice") <= 2.0
    assert await one.retry_after("carol") == 0


async def test_without_redis_each_worker_still_limits(
    private_redis: services.PrivateRedis,
) -> None:
    client = redis_client(private_redis.url)
    limiter = RedisRateLimiter(client, prefix="t", name="t", rate=0.1, burst=2)
    try:
        await asyncio.to_thread(private_redis.stop)
        assert [await limiter.allow("alice") for _ in range(3)] == [True, True, False]
        assert await limiter.retry_after("alice") > 0
    finally:
        await client.aclose()


async def test_login_failures_count_across_workers(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
) -> None:
    a, b = two_workers(login_failures_per_user=3, login_window_seconds=60)
    async with httpx.AsyncClient() as client:
        await register(client_for(client, a), "alice")
        codes = []
        for server in (a, b, a, b):
            response = await client.post(
                f"{server.http_url}/api/auth/token",
                data={"username": "alice", "password": "wrong password"},
            )
            codes.append(response.status_code)
        assert codes == [401, 401, 401, 429]
        right = await client.post(
            f"{a.http_url}/api/auth/token", data={"username": "alice", "password": PASSWORD}
        )
        assert right.status_code == 429  # on the other worker too


def client_for(client: httpx.AsyncClient, server: LiveServer) -> httpx.AsyncClient:
    client.base_url = httpx.URL(server.http_url)
    return client


async def test_http_posts_count_across_workers(
    two_workers: Callable[..., tuple[LiveServer, LiveServer]],
) -> None:
    a, b = two_workers(messages_per_second=0.1, message_burst=2)
    async with httpx.AsyncClient() as client:
        await register(client_for(client, a), "alice")
        token = (
            await client.post(
                f"{a.http_url}/api/auth/token",
                data={"username": "alice", "password": PASSWORD},
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        codes = [
            (
                await client.post(
                    f"{server.http_url}/api/rooms/lobby/messages",
                    json={"text": "hi"},
                    headers=auth,
                )
            ).status_code
            for server in (a, b, b)
        ]
        assert codes == [201, 201, 429]
