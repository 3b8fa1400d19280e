"""Token buckets: a sustained rate with a burst, per socket or per key."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows ``burst`` actions at once, then ``rate`` per second on average."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, *, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def full(self) -> bool:
        elapsed = time.monotonic() - self._stamp
        return self._tokens + elapsed * self._rate >= self._burst


class KeyedRateLimiter:
    """One bucket per key (a user, an address); idle full buckets are forgotten."""

    def __init__(self, *, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self._rate, self._burst, self._max_keys = rate, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full}
            bucket = self._buckets[key] = TokenBucket(rate=self._rate, burst=self._burst)
        return bucket.take()
