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

    def acquire(self) -> float:
        """Take one if there is one: 0.0, else the seconds until one would be there."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate

    def give_back(self) -> None:
        """Return one taken by ``acquire`` (the attempt it paid for did not count)."""
        self._refill()
        self._tokens = min(self._burst, self._tokens + 1)

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

    def acquire(self, key: str) -> float:
        """Take one for ``key``: 0.0 when taken, else the seconds until one is there."""
        return self._bucket(key).acquire()

    def refund(self, key: str) -> None:
        """Give back one that ``acquire`` took for ``key``."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back()


class SharedRateLimiter(Protocol):
    """Keyed token buckets that every worker may share (Redis) or this process keeps."""

    async def allow(self, key: str) -> bool:
        """Take one action's worth for ``key``; False when it has none left."""
        ...

    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again, without taking anything."""
        ...


class ReservingRateLimiter(SharedRateLimiter, Protocol):
    """A shared limiter that takes before the work it pays for, and may give it back.

    Taking first (``acquire``) is what makes concurrent attempts count like sequential
    ones: checking, working, then taking lets every attempt in flight pass the check.
    """

    async def acquire(self, key: str) -> float:
        """Take one for ``key`` atomically: 0.0 when taken, else the seconds to wait."""
        ...

    async def refund(self, key: str) -> None:
        """Give back one that ``acquire`` took (never past the burst)."""
        ...


class LocalRateLimiter:
    """This process's buckets (one worker, or no Redis configured)."""

    def __init__(self, limiter: KeyedRateLimiter) -> None:
        self._limiter = limiter

    async def allow(self, key: str) -> bool:
        return self._limiter.allow(key)

    async def retry_after(self, key: str) -> float:
        return self._limiter.retry_after(key)

    async def acquire(self, key: str) -> float:
        return self._limiter.acquire(key)

    async def refund(self, key: str) -> None:
        self._limiter.refund(key)
