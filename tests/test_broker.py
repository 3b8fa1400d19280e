"""The Broker and Presence contract, run against every implementation (memory, Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roomchat.realtime.backend import create_backend
from roomchat.realtime.broker import Broker, Presence, Subscription
from tests import services
from tests.conftest import make_settings

TIMEOUT = 5.0


@pytest.fixture(params=["memory", "redis"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Broker, Presence]]:
    overrides = {}
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        overrides = {"redis_url": services.REDIS_URL, "redis_prefix": prefix}
    broker, presence = create_backend(make_settings(tmp_path, **overrides))
    yield broker, presence
    await presence.close()
    await broker.close()


async def take(subscription: Subscription, count: int) -> list[object]:
    received: list[object] = []
    async with asyncio.timeout(TIMEOUT):
        async for payload in subscription:
            received.append(payload)
            if len(received) == count:
                return received
    return received


async def test_every_subscriber_gets_every_payload_in_publish_order(
    pair: tuple[Broker, Presence],
) -> None:
    broker, _ = pair
    async with broker.subscribe("lobby") as first, broker.subscribe("lobby") as second:
        payloads = [f"payload {n}" for n in range(50)]
        for payload in payloads:
            await broker.publish("lobby", payload)
        assert await take(first, 50) == payloads
        assert await take(second, 50) == payloads


async def test_subscribed_once_entered_and_only_to_its_channel(
    pair: tuple[Broker, Presence],
) -> None:
    broker, _ = pair
    async with broker.subscribe("a") as in_a, broker.subscribe("b") as in_b:
        await broker.publish("b", "for b")
        await broker.publish("a", "for a")
        await broker.publish("nobody", "for nobody")
        assert await take(in_a, 1) == ["for a"]
        assert await take(in_b, 1) == ["for b"]


async def test_payloads_come_back_exactly_as_sent(pair: tuple[Broker, Presence]) -> None:
    broker, _ = pair
    payloads = ['{"type":"message","text":"é ✓ \\u0000 \\n"}', "x" * 65536, "7|{}", " "]
    async with broker.subscribe("lobby") as subscription:
        for payload in payloads:
            await broker.publish("lobby", payload)
        assert await take(subscription, len(payloads)) == payloads


async def test_leaving_unsubscribes_and_a_new_subscription_starts_fresh(
    pair: tuple[Broker, Presence],
) -> None:
    broker, _ = pair
    async with broker.subscribe("lobby") as subscription:
        await broker.publish("lobby", "before")
        assert await take(subscription, 1) == ["before"]
    await broker.publish("lobby", "while nobody listens")
    async with broker.subscribe("lobby") as subscription:
        await broker.publish("lobby", "after")
        assert await take(subscription, 1) == ["after"]
    assert broker.connected
    await broker.ping()


async def test_presence_counts_users_not_connections(pair: tuple[Broker, Presence]) -> None:
    _, presence = pair
    assert await presence.add("lobby", "alice", "tab1") is True
    assert await presence.add("lobby", "alice", "tab2") is False
    assert await presence.add("lobby", "bob", "b1") is True
    assert await presence.add("other", "alice", "tab3") is True
    assert await presence.members("lobby") == ["alice", "bob"]
    assert await presence.rooms() == {"lobby": 2, "other": 1}

    assert await presence.remove("lobby", "alice", "tab1") is False
    assert await presence.members("lobby") == ["alice", "bob"]
    assert await presence.remove("lobby", "alice", "tab2") is True
    assert await presence.remove("lobby", "alice", "tab2") is False  # twice: no-op
    assert await presence.remove("lobby", "nobody", "x") is False
    assert await presence.members("lobby") == ["bob"]
    assert await presence.remove("lobby", "bob", "b1") is True
    assert await presence.members("lobby") == []
    assert await presence.rooms() == {"other": 1}


async def test_socket_claims_stop_at_the_limit_and_free_on_release(
    pair: tuple[Broker, Presence],
) -> None:
    _, presence = pair
    assert [await presence.claim_socket("alice", 2) for _ in range(3)] == [True, True, False]
    assert await presence.claim_socket("bob", 2) is True
    await presence.release_socket("alice")
    assert await presence.claim_socket("alice", 2) is True
    assert await presence.claim_socket("alice", 2) is False
