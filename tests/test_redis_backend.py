"""What only the Redis backend does: presence across workers, dead workers, Redis restarts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from roomchat.realtime.broker import GAP, BrokerUnavailableError, Subscription
from roomchat.realtime.broker.redis import RedisBroker, redis_client
from roomchat.realtime.broker.redis_presence import RedisPresence
from tests import services
from tests.waiting import eventually

TIMEOUT = 10.0


async def next_event(subscription: Subscription, kind: str) -> dict[str, str]:
    async with asyncio.timeout(TIMEOUT):
        async for payload in subscription:
            if payload is not GAP and json.loads(str(payload))["type"] == kind:
                return dict(json.loads(str(payload)))
    raise AssertionError("the subscription ended")


async def test_presence_spans_workers(redis_prefix: str) -> None:
    one = RedisPresence(services.REDIS_URL, prefix=redis_prefix)
    two = RedisPresence(services.REDIS_URL, prefix=redis_prefix)
    try:
        assert await one.add("lobby", "alice", "a1") is True
        assert await two.add("lobby", "alice", "a2") is False  # same user, other worker
        assert await two.add("lobby", "bob", "b1") is True
        for presence in (one, two):
            assert await presence.members("lobby") == ["alice", "bob"]
            assert await presence.rooms() == {"lobby": 2}
        assert await one.remove("lobby", "alice", "a1") is False
        assert await two.remove("lobby", "alice", "a2") is True
        assert await one.members("lobby") == ["bob"]
    finally:
        await one.close()
        await two.close()
    # A worker that shuts down takes its members with it.
    survivor = RedisPresence(services.REDIS_URL, prefix=redis_prefix)
    assert await survivor.members("lobby") == []
    await survivor.close()


async def test_a_dead_workers_members_leave_within_the_ttl(redis_prefix: str) -> None:
    broker = RedisBroker(services.REDIS_URL, prefix=redis_prefix)
    doomed = RedisPresence(services.REDIS_URL, prefix=redis_prefix, ttl=1.0)
    survivor = RedisPresence(services.REDIS_URL, prefix=redis_prefix, ttl=1.0)
    try:
        async with broker.subscribe("lobby") as subscription:
            await doomed.add("lobby", "alice", "a1")
            await survivor.add("lobby", "bob", "b1")
            assert await survivor.members("lobby") == ["alice", "bob"]
            # Dies without a goodbye: no more heartbeats, nothing removed.
            doomed._stopping.set()
            await doomed._task
            await doomed._redis.aclose()
            started = time.monotonic()
            leave = await next_event(subscription, "leave")
            assert leave == {"type": "leave", "room": "lobby", "user": "alice"}
            # Swept after the TTL (1 s, checked every third of it): a bound of a few
            # TTLs tells "swept" from "kept until the timeout" even on a loaded machine.
            assert time.monotonic() - started < 1.0 * 4
            assert await survivor.members("lobby") == ["bob"]
    finally:
        await survivor.close()
        await broker.close()


async def test_the_subscriber_reconnects_and_reports_the_gap(
    private_redis: services.PrivateRedis,
) -> None:
    broker = RedisBroker(private_redis.url, prefix="t", ping_interval=0.5)
    try:
        async with broker.subscribe("lobby") as subscription:
            await broker.publish("lobby", "one")
            items = aiter(subscription)
            assert await asyncio.wait_for(anext(items), TIMEOUT) == "one"

            await asyncio.to_thread(private_redis.stop)
            await eventually(lambda: not broker.connected)
            with pytest.raises(BrokerUnavailableError):
                await broker.publish("lobby", "lost")
            with pytest.raises(BrokerUnavailableError):
                await broker.ping()

            await asyncio.to_thread(private_redis.start)
            assert await asyncio.wait_for(anext(items), TIMEOUT) is GAP
            assert broker.connected
            await broker.publish("lobby", "two")
            assert await asyncio.wait_for(anext(items), TIMEOUT) == "two"
    finally:
        await broker.close()


async def test_presence_is_written_again_after_redis_restarts(
    private_redis: services.PrivateRedis,
) -> None:
    broker = RedisBroker(private_redis.url, prefix="t")
    presence = RedisPresence(private_redis.url, prefix="t", ttl=1.5)
    try:
        await presence.add("lobby", "alice", "a1")
        await asyncio.to_thread(private_redis.stop)
        assert await presence.add("lobby", "bob", "b1") is False  # deferred, not lost
        with pytest.raises(BrokerUnavailableError):
            await presence.members("lobby")
        await asyncio.to_thread(private_redis.start)  # empty: no persistence
        await eventually(lambda: presence.members("lobby"))
        assert await presence.members("lobby") == ["alice", "bob"]
    finally:
        await presence.close()
        await broker.close()


async def test_socket_claims_count_across_workers_until_one_dies(redis_prefix: str) -> None:
    doomed = RedisPresence(services.REDIS_URL, prefix=redis_prefix, ttl=1.0)
    survivor = RedisPresence(services.REDIS_URL, prefix=redis_prefix, ttl=1.0)
    try:
        assert await doomed.claim_socket("alice", 3) is True
        assert await survivor.claim_socket("alice", 3) is True
        assert await doomed.claim_socket("alice", 3) is True
        assert await survivor.claim_socket("alice", 3) is False  # 3 on the two workers
        # Dies without a goodbye: its claims go once its heartbeat deadline passes.
        doomed._stopping.set()
        await doomed._task
        await doomed._redis.aclose()
        await eventually(lambda: survivor.claim_socket("alice", 3))
        assert await survivor.claim_socket("alice", 3) is True
        assert await survivor.claim_socket("alice", 3) is False
    finally:
        await survivor.close()


async def test_socket_claims_are_written_again_after_redis_restarts(
    private_redis: services.PrivateRedis,
) -> None:
    presence = RedisPresence(private_redis.url, prefix="t", ttl=1.5)
    other = RedisPresence(private_redis.url, prefix="t", ttl=1.5)
    try:
        assert await presence.claim_socket("alice", 2) is True
        await asyncio.to_thread(private_redis.stop)
        assert await presence.claim_socket("alice", 2) is True  # counted here meanwhile
        assert await presence.claim_socket("alice", 2) is False
        await asyncio.to_thread(private_redis.start)  # empty: no persistence
        redis = redis_client(private_redis.url)

        async def written_again() -> bool:
            return await redis.hget(f"t:presence:s:{presence.worker}", "alice") == "2"

        await eventually(written_again)
        await redis.aclose()
        assert await other.claim_socket("alice", 2) is False  # at the cap on every worker
    finally:
        await presence.close()
        await other.close()


async def test_subscribing_while_redis_is_away_returns_at_once_and_owes_a_gap(
    private_redis: services.PrivateRedis,
) -> None:
    broker = RedisBroker(private_redis.url, prefix="t", subscribe_timeout=30)
    try:
        await eventually(lambda: broker.connected)
        await asyncio.to_thread(private_redis.stop)
        await eventually(lambda: not broker.connected)
        async with asyncio.timeout(2), broker.subscribe("lobby") as subscription:
            pass  # entered without waiting for Redis (the timeout is 30 s)
        async with broker.subscribe("lobby") as subscription:
            await asyncio.to_thread(private_redis.start)
            items = aiter(subscription)
            assert await asyncio.wait_for(anext(items), TIMEOUT) is GAP
            await broker.publish("lobby", "after")
            assert await asyncio.wait_for(anext(items), TIMEOUT) == "after"
    finally:
        await broker.close()
