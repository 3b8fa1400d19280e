"""Token buckets: a sustained rate with a burst, per socket or per key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]


class TokenBucket:
    """Allows ``burst`` actions at once, then ``rate`` per second on average."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until ``take`` would succeed (0 when it would now)."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self._burst


class KeyedRateLimiter:
    """One bucket per key (a user, an address); idle full buckets are forgotten."""

    def __init__(
        self, *, rate: float, burst: int, max_keys: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        self._rate, self._burst, self._max_keys, self._clock = rate, burst, max_keys, clock
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full}
            bucket = TokenBucket(rate=self._rate, burst=self._burst, clock=self._clock)
            self._buckets[key] = bucket
        return bucket

    def allow(self, key: str) -> bool:
        """Take one action's worth for ``key``; False when it has none left."""
        return self._bucket(key).take()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again, without taking anything."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait_time()


class SharedRateLimiter(Protocol):
    """Keyed token buckets that every worker may share (Redis) or this process keeps."""

    async def allow(self, key: str) -> bool:
        """Take one action's worth for ``key``; False when it has none left."""
        ...

    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again, without taking anything."""
        ...


class LocalRateLimiter:
    """This process's buckets (one worker, or no Redis configured)."""

    def __init__(self, limiter: KeyedRateLimiter) -> None:
        self._limiter = limiter

    async def allow(self, key: str) -> bool:
        return self._limiter.allow(key)

    async def retry_after(self, key: str) -> float:
        return self._limiter.retry_after(key)
