"""Choose where the limits count from the settings: in Redis when a URL is set (every
worker counts together), else in this process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from roomchat.config import Settings
from roomchat.limits.buckets import Clock, KeyedRateLimiter, LocalRateLimiter, ReservingRateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Makes a limiter from (name, rate per second, burst).
LimiterFactory = Callable[[str, float, int], ReservingRateLimiter]

#: Connections to Redis for one set of limiters, and how long a check waits for a free one.
POOL_SIZE = 64
POOL_WAIT_SECONDS = 5.0


class Limiters:
    """Makes named limiters that all count in one place, and closes what they share.

    With Redis they share one client whose pool makes a burst of checks wait for a
    connection: redis-py's default pool raises once 100 connections are busy, and a
    limiter that counts in this worker only while Redis fails would then let a burst of
    200 logins at once through twice: in Redis up to the limit, and again here.
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        """``clock`` (seconds, as ``time.monotonic``) is for tests that move time
        themselves; by default local buckets use ``time.monotonic`` and Redis's its own."""
        self._clock = clock
        self._prefix = settings.redis_prefix
        self._client: Redis | None = None
        if settings.redis_url:
            from roomchat.ops.redis import redis_client

            self._client = redis_client(
                settings.redis_url, pool_size=POOL_SIZE, pool_wait_seconds=POOL_WAIT_SECONDS
            )

    @property
    def shared(self) -> bool:
        """True when every worker counts together (in Redis)."""
        return self._client is not None

    def __call__(self, name: str, rate: float, burst: int) -> ReservingRateLimiter:
        if self._client is None:
            clock = self._clock or time.monotonic
            return LocalRateLimiter(KeyedRateLimiter(rate=rate, burst=burst, clock=clock))
        from roomchat.limits.redis_buckets import RedisRateLimiter

        return RedisRateLimiter(
            self._client, prefix=self._prefix, name=name, rate=rate, burst=burst, clock=self._clock
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
